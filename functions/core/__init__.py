"""Domain code shared by every Lambda handler and by the GPU worker: settings, jobs, keys, storage, queues."""
