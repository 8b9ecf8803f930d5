"""Fata's www appliance: a static web site served over HTTP/1.1 from memoised responses."""
