//go:build !linux && !darwin

package main

// isTerminal reports whether fd is a terminal; elsewhere progress is plain.
func isTerminal(fd uintptr) bool { return false }
