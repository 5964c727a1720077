package git

// SetBeforePush makes f run before each of w's pushes: a test's other
// writer pushes there.
func SetBeforePush(w *Workload, f func()) { w.beforePush = f }
