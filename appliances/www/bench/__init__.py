"""``fata bench www``: the Fata HTTP/1.1 appliance against nginx, loaded by file path."""
