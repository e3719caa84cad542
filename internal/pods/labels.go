package pods

import "knode.io/knode/internal/crispec"

// restoredFromAnnotation names the archive (and digest) a pod's container
// was restored from; knode adds it to the pod it serves.
const restoredFromAnnotation = "checkpoint.knode.io/restored-from"

// OwnerSelector selects the sandboxes and containers the knode named node
// made, for anyone else who reads the runtime on its behalf.
func OwnerSelector(node string) map[string]string { return crispec.OwnerSelector(node) }
