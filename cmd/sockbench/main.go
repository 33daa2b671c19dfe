// Command sockbench load-tests and benchmarks WebSocket, TCP and UDP servers.
//
// Exit codes: 0 passed; 1 a threshold or baseline gate failed; 2 usage or
// configuration error; 3 the run could not be carried out.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sockbench/sockbench/scenarios"
)

// Exit codes, documented in README.md and every --help.
const (
	exitOK     = 0
	exitGate   = 1
	exitUsage  = 2
	exitCannot = 3
)

const exitCodesHelp = `Exit codes: 0 passed; 1 a threshold or baseline gate failed; 2 usage or
configuration error (including a plan that needs more connections than the
open-files limit allows); 3 the run could not be carried out (target
unreachable, no connection opened, every connection lost, interrupted: the
partial result is written).`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand: its flags, usage text and the function it runs.
type command struct {
	summary string
	usage   string
	flags   func(fs *pflag.FlagSet) func(args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"run":       runCmd(),
		"compare":   compareCmd(),
		"report":    reportCmd(),
		"serve":     serveCmd(),
		"scenarios": scenariosCmd(),
		"version":   versionCmd(),
	}
}

// usageError is a bad flag or argument: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 {
		topUsage(stderr, cmds)
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		topUsage(stdout, cmds) // asked for: stdout, so that it pipes into less
		return exitOK
	}
	name := args[0]
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "sockbench: unknown command %q\n\n", name)
		topUsage(stderr, cmds)
		return exitUsage
	}
	fs := pflag.NewFlagSet("sockbench "+name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(stderr)
	fn := cmd.flags(fs)
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "%s\n\nFlags:\n%s\n%s\n", strings.TrimSpace(cmd.usage), fs.FlagUsages(), exitCodesHelp)
	}
	fs.Usage = func() {} // written below: --help to stdout, a usage error's to stderr
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			usage(stdout)
			return exitOK
		}
		usage(stderr)
		fmt.Fprintf(stderr, "sockbench %s: %v (see sockbench %s --help)\n", name, err, name)
		return exitUsage
	}
	return exitCode(stderr, name, fn(fs.Args(), stdout, stderr))
}

// exitCode reports err and maps it to the documented exit code.
func exitCode(stderr io.Writer, name string, err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "sockbench %s: %v\n", name, err)
	var ge *gateError
	if errors.As(err, &ge) {
		return exitGate
	}
	var ue *usageError
	var se *scenarios.Error
	if errors.As(err, &ue) || errors.As(err, &se) {
		return exitUsage
	}
	return exitCannot // *scenarios.RunError, *cannotError and anything unforeseen
}

// gateError is a failed gate: exit 1. The summary has the details; the
// error is one line for logs.
type gateError struct{ msg string }

func (e *gateError) Error() string { return e.msg }

func topUsage(w io.Writer, cmds map[string]command) {
	fmt.Fprintf(w, "sockbench: load-test and benchmark WebSocket, TCP and UDP servers.\n\nUsage: sockbench COMMAND [flags]\n\nCommands:\n")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'sockbench COMMAND --help' for a command's flags and examples.\n\n%s\n", exitCodesHelp)
}
