"""Over-the-air app updates (issue 22): the bundle's reader and installer (bundle.py), its
signature (rsa.py), the download (http.py), the command and the trial of a new version
(update.py). Which version runs is rbboot's choice, at boot (lib/rbboot.py)."""
