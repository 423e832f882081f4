# On Windows: builds the bundle (dist\imapcrypt\: imapcrypt-tray.exe, imapcrypt.exe) and the installer
# dist\imapcrypt-VERSION-windows-setup.exe with Inno Setup 6 (installers\windows\imapcrypt.iss).
# Needs Python >= 3.11 as `python` and Inno Setup 6 (ISCC.exe). Not built by `make test` (that runs
# on Linux); .github/workflows/bundles.yml runs it.
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")
$version = (Select-String -Path imapcrypt\__init__.py -Pattern '^__version__ = "(.*)"').Matches[0].Groups[1].Value

function Invoke-Checked([string]$Program, [string[]]$Arguments) {
    & $Program @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Program exited $LASTEXITCODE" }
}

Invoke-Checked python @("-m", "venv", "build\windows-venv")
Invoke-Checked build\windows-venv\Scripts\python.exe @("-m", "pip", "install", "--quiet", "--upgrade", "pip")
Invoke-Checked build\windows-venv\Scripts\python.exe @("-m", "pip", "install", "--quiet", ".[bundle]")
Invoke-Checked build\windows-venv\Scripts\pyinstaller.exe @(
    "--noconfirm", "--log-level", "WARN", "--distpath", "dist", "--workpath", "build\pyinstaller",
    "installers\imapcrypt.spec")
Invoke-Checked dist\imapcrypt\imapcrypt.exe @("--version")

$iscc = Join-Path ${env:ProgramFiles(x86)} "Inno Setup 6\ISCC.exe"
Invoke-Checked $iscc @("/Q", "/DAppVersion=$version", "installers\windows\imapcrypt.iss")
Write-Output "dist\imapcrypt-$version-windows-setup.exe"
