//go:build !linux || targets_goroutine

package targets

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

func TestHandshakeReaderStopsAfterHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in       string
		wantRest string
	}{
		{
			name:     "crlf",
			in:       "GET / HTTP/1.1\r\nHost: x\r\n\r\nFRAME",
			wantRest: "FRAME",
		},
		{
			name:     "bare lf",
			in:       "GET / HTTP/1.1\nHost: x\n\nFRAME",
			wantRest: "FRAME",
		},
		{
			name:     "cr inside a line is not a blank line",
			in:       "GET / HTTP/1.1\r\nX: a\r\r\n\r\nFRAME",
			wantRest: "FRAME",
		},
		{
			name:     "nothing after headers",
			in:       "GET / HTTP/1.1\r\n\r\n",
			wantRest: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A 3-byte read size makes the terminator straddle reads.
			br := bufio.NewReaderSize(smallReads{strings.NewReader(tt.in)}, 16)
			got, err := io.ReadAll(&handshakeReader{br: br})
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.in[:len(tt.in)-len(tt.wantRest)]; string(got) != want {
				t.Errorf(
					"passed on %q, want %q",
					got, want)
			}
			rest, _ := io.ReadAll(br)
			if string(rest) != tt.wantRest {
				t.Errorf(
					"left %q in the buffer, want %q",
					rest, tt.wantRest)
			}
		})
	}
}

// smallReads returns at most 3 bytes per Read.
type smallReads struct{ r io.Reader }

func (h smallReads) Read(p []byte) (int, error) { return h.r.Read(p[:min(len(p), 3)]) }
