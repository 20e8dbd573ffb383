"""Moving queued jobs to worker nodes: claims, leases, the reaper, and result collection."""
