package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/sockbench/sockbench/scenarios"
)

func scenariosCmd() command {
	return command{
		summary: "list the built-in scenarios",
		usage: `
Usage: sockbench scenarios

Lists the built-in scenarios, one a line. Run one with 'sockbench run NAME';
write your own as YAML (see README.md, "Scenario files").

Example:
  sockbench scenarios`,
		flags: func(fs *pflag.FlagSet) func([]string, io.Writer, io.Writer) error {
			return func(args []string, stdout, stderr io.Writer) error {
				if len(args) != 0 {
					return &usageError{"scenarios takes no arguments"}
				}
				tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
				for _, s := range scenarios.Builtins() {
					var gates []string
					for _, th := range s.Thresholds {
						gates = append(gates, th.Expr)
					}
					fmt.Fprintf(tw, "%s\t%s\n\t  gates: %s\n", s.Name, s.Description, strings.Join(gates, ", "))
				}
				fmt.Fprintf(tw, "%s\t%s\n\t  gates: %s\n", tcpVsUDP, "echo-tcp then echo-udp with the same flags, side by side with ratios", "each side's own")
				return tw.Flush()
			}
		},
	}
}

func versionCmd() command {
	return command{
		summary: "print the sockbench and Go versions",
		usage: `
Usage: sockbench version

Example:
  sockbench version`,
		flags: func(fs *pflag.FlagSet) func([]string, io.Writer, io.Writer) error {
			return func(args []string, stdout, stderr io.Writer) error {
				v := version
				if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
					v = bi.Main.Version
				}
				fmt.Fprintf(stdout, "sockbench %s %s %s/%s\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
				return nil
			}
		},
	}
}
