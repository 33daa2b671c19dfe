//go:build !race

package targets

// raceEnabled reports whether the race detector is on.
const raceEnabled = false
