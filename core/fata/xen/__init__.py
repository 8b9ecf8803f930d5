"""Xen's ABIs as sans-IO engines: the xenstore wire protocol (``xs_wire``) so far; shared
rings, event channels and grants follow with the Xen platform."""
