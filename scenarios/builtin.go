package scenarios

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// The built-in scenarios, one YAML file each, named after the scenario.
//
//go:embed builtin/*.yaml
var builtinFS embed.FS

// Builtin returns a fresh copy of the built-in scenario name (echo, echo-tcp,
// echo-udp, ping), parsed with the file name "builtin:<name>" so that errors
// point into it. ok is false if there is no such built-in.
func Builtin(name string) (*Spec, bool) {
	if name == "" || strings.ContainsAny(name, `/\`) {
		return nil, false
	}
	data, err := builtinFS.ReadFile("builtin/" + name + ".yaml")
	if err != nil {
		return nil, false
	}
	return mustParseBuiltin(name, data), true
}

// Builtins returns fresh copies of all the built-in scenarios, sorted by name.
func Builtins() []*Spec {
	files, err := fs.Glob(builtinFS, "builtin/*.yaml")
	if err != nil {
		panic(err) // the pattern is constant
	}
	specs := make([]*Spec, 0, len(files))
	for _, f := range files {
		data, err := builtinFS.ReadFile(f)
		if err != nil {
			panic(err)
		}
		specs = append(specs, mustParseBuiltin(strings.TrimSuffix(path.Base(f), ".yaml"), data))
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
	return specs
}

// mustParseBuiltin parses an embedded scenario; the tests keep them valid.
func mustParseBuiltin(name string, data []byte) *Spec {
	s, err := Parse("builtin:"+name, data)
	if err != nil {
		panic(fmt.Sprintf("scenarios: invalid built-in scenario: %v", err))
	}
	return s
}
