"""OpenFlow 1.3 codec tests: the appliances/openflow_switch package against itself, os-ken and fuzzing."""
