package scenarios

import (
	"errors"
	"strconv"
)

// Error is a configuration problem: a value in a scenario file, a flag, or a
// threshold expression that sockbench cannot run with. Msg names the field
// and, where one helps, says how to fix it.
//
// Several problems are returned joined with errors.Join; errors.As finds the
// first *Error either way. The CLI maps *Error to exit code 2.
type Error struct {
	File      string // scenario file ("echo.yaml", "builtin:echo"); empty if not from a file
	Line, Col int    // 1-based position of the offending node; 0 if unknown
	Flag      string // the flag that set the value ("--rate"); when set, File is not shown
	Msg       string
}

// Error formats e as "file:line:col: msg", or "--flag: msg" when a flag set
// the offending value.
func (e *Error) Error() string {
	switch {
	case e.Flag != "":
		return e.Flag + ": " + e.Msg
	case e.File == "" && e.Line == 0:
		return e.Msg
	case e.Line == 0:
		return e.File + ": " + e.Msg
	case e.Col == 0:
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return e.File + ":" + strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Col) + ": " + e.Msg
}

// errList collects problems, dropping repeats (a flag applied to every phase
// fails the same way in each).
type errList struct {
	errs []error
	seen map[string]bool
}

func (l *errList) add(e *Error) {
	s := e.Error()
	if l.seen[s] {
		return
	}
	if l.seen == nil {
		l.seen = map[string]bool{}
	}
	l.seen[s] = true
	l.errs = append(l.errs, e)
}

// err is nil, the one *Error, or several joined.
func (l *errList) err() error {
	switch len(l.errs) {
	case 0:
		return nil
	case 1:
		return l.errs[0]
	}
	return errors.Join(l.errs...)
}
