package demo

// What chaos drills against the demo environment need to reach.

// CanaryURL is the base URL of the canary slot, where the demo version's
// own fault hooks are (/admin/grow?mb=N grows its memory).
func (e *Env) CanaryURL() string { return e.work.canary.URL() }

// Pages are the PagerDuty events the stand-in received, oldest first.
func (e *Env) Pages() []map[string]any { return e.pager.pages() }

// DataDir is the mesh's data directory: tokens, keys, the CA.
func (e *Env) DataDir() string { return e.dataDir }
