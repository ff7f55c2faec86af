"""Browser files of the waiting room: splash page, page script, heartbeat worker."""
