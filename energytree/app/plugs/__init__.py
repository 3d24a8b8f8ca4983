"""One plug per site-file section: its model and what it runs while the site runs."""
