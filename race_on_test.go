//go:build race

package geocache

const raceEnabled = true
