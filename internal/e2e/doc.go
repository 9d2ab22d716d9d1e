// Package e2e holds black-box tests that build the real binaries and run them
// as processes, the way an administrator does: no arguments, embedded
// defaults, real ports, real signals.
package e2e
