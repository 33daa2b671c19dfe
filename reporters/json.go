package reporters

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/sockbench/sockbench/internal/result"
)

// JSON writes the Result itself, indented, as `run` writes it
// (results/README.md documents the layout).
func JSON(w io.Writer, r *result.Result) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}
