"""Tests of Fata's own TCP/IP stack (fata.net) and the TAP platform."""
