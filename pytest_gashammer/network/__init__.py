"""Multi-node networks of execution clients: nodes, links, events, snapshots and simulation steps."""
