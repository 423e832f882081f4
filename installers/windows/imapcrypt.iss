; Inno Setup 6 script: installs the bundle (dist\imapcrypt\, built by installers\windows\build.ps1)
; for the current user, without administrator rights, into %LOCALAPPDATA%\Programs\imapcrypt.
; A Start-menu entry; start at login if the user ticks it (the same Run value the tray's Settings
; toggle writes, imapcrypt/autostart.py); an uninstaller in Settings > Apps that removes the programs,
; the Start-menu entry and that Run value. Configuration, keys and journals stay.
#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif

[Setup]
AppId={{6C1E2F4A-3B7D-4E8A-9C51-0D2B7A9E4F13}
AppName=imapcrypt
AppVersion={#AppVersion}
AppVerName=imapcrypt {#AppVersion}
DefaultDirName={autopf}\imapcrypt
DefaultGroupName=imapcrypt
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
SourceDir=..\..
OutputDir=dist
OutputBaseFilename=imapcrypt-{#AppVersion}-windows-setup
UninstallDisplayIcon={app}\imapcrypt-tray.exe
Compression=lzma2
SolidCompression=yes
WizardStyle=modern

[Tasks]
Name: "autostart"; Description: "Start imapcrypt when I log in"; Flags: unchecked

[Files]
Source: "dist\imapcrypt\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\imapcrypt"; Filename: "{app}\imapcrypt-tray.exe"; Comment: "Keep your IMAP mailbox encrypted at rest"

[Registry]
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; \
    ValueName: "imapcrypt"; ValueData: """{app}\imapcrypt-tray.exe"""; Flags: uninsdeletevalue; Tasks: autostart

[Run]
Filename: "{app}\imapcrypt-tray.exe"; Description: "Start imapcrypt now"; Flags: nowait postinstall skipifsilent

[Code]
// The tray's Settings may have written the Run value after the install: remove it too when it
// starts this installation's tray.
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Value: String;
begin
  if (CurUninstallStep = usUninstall) and
     RegQueryStringValue(HKCU, 'Software\Microsoft\Windows\CurrentVersion\Run', 'imapcrypt', Value) and
     (Pos(Lowercase(ExpandConstant('{app}')), Lowercase(Value)) > 0) then
    RegDeleteValue(HKCU, 'Software\Microsoft\Windows\CurrentVersion\Run', 'imapcrypt');
end;
