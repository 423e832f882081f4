"""imapcrypt_ui: the Qt tray front end. It only calls imapcrypt's public API."""
