"""Site: what runs at a hospital or data holder taking part in a task (the device side).

``device_identity.DeviceIdentity`` is the site's Ed25519 key and pinned scope;
``device_client.EdgeClient`` talks to its edge server over HTTP, signing every update,
evaluation and read (``fednode.update.envelope`` / ``signing``); ``hospital.Hospital`` is the
per-site loop (pull the global model, train with pure ``fednode.device``, post the delta,
evaluate). Nothing here imports ``edge_server``: a site needs only the wire format.
"""
