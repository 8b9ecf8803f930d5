"""Fata's OpenFlow 1.3 switch appliance.  What exists so far is the codec (sans-IO, bytes
in and dataclasses out and back, exact to the byte, specification 1.3.5) and the switch
engine on it (sans-IO too: messages and frames in, messages and frames out).

- :mod:`.ofp_const`: the specification's numbers;
- :mod:`.oxm`: match fields, ``ofp_match``, and the checks a switch makes before installing
  a match (prerequisites and all);
- :mod:`.actions`, :mod:`.instructions`, :mod:`.buckets`, :mod:`.meter_bands`,
  :mod:`.port_desc`, :mod:`.queue_desc`, :mod:`.table_features`: the structures inside
  messages;
- :mod:`.messages` and :mod:`.multipart`: every message type, ``decode_message``;
- :mod:`.connection`: the HELLO exchange, version negotiation and framing of a byte stream;
- :mod:`.packet` (frames to match fields), :mod:`.rewrite` (the actions that change bytes),
  :mod:`.flow_table` (entries, lookup, FLOW_MOD, timeouts, the exact-match cache),
  :mod:`.group`, :mod:`.meter`, and :mod:`.switch`, the engine: the pipeline, ports,
  buffers and every message a controller sends.
"""
