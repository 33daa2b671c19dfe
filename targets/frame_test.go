package targets

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/gobwas/ws"
)

// TestParseHeaderMatchesGobwas decodes headers with parseHeader in place and
// with ws.ReadHeaderBuffer from a reader, complete and cut at every byte.
func TestParseHeaderMatchesGobwas(t *testing.T) {
	t.Parallel()
	mask := [4]byte{1, 2, 3, 4}
	var cases []ws.Header
	for _, n := range []int64{0, 1, 125, 126, 127, 65535, 65536, 1 << 20, 1<<63 - 1} {
		for _, op := range []ws.OpCode{ws.OpContinuation, ws.OpText, ws.OpBinary, ws.OpClose, ws.OpPing, ws.OpPong, 0x3, 0xb} {
			for _, masked := range []bool{true, false} {
				h := ws.Header{Fin: n%2 == 0, OpCode: op, Length: n, Masked: masked}
				if masked {
					h.Mask = mask
				}
				cases = append(cases, h)
			}
		}
	}
	rsv := ws.Header{Fin: true, Rsv: ws.Rsv(true, false, true), OpCode: ws.OpBinary, Length: 300, Masked: true, Mask: mask}
	cases = append(cases, rsv)

	tests := []struct {
		name string
		in   []byte
	}{
		{
			name: "length with most significant bit set",
			in:   []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4},
		},
		{
			name: "trailing payload is not read",
			in:   []byte{0x81, 0x85, 1, 2, 3, 4, 'h', 'e', 'l', 'l', 'o'},
		},
	}
	for _, h := range cases {
		var b bytes.Buffer
		if err := ws.WriteHeader(&b, h); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name string
			in   []byte
		}{name: "header", in: b.Bytes()})
	}
	for _, tt := range tests {
		for cut := 0; cut <= len(tt.in); cut++ {
			in := tt.in[:cut]
			want, wantErr := ws.ReadHeaderBuffer(bytes.NewReader(in), make([]byte, ws.MaxHeaderSize-2))
			got, n, err := parseHeader(in)
			switch {
			case errors.Is(wantErr, io.EOF) || errors.Is(wantErr, io.ErrUnexpectedEOF):
				if err != errShortHeader {
					t.Errorf(
						"%s %x: parseHeader = %+v, %v; gobwas ran out of bytes (%v), want errShortHeader",
						tt.name, in, got, err, wantErr)
				}
			case wantErr != nil:
				if err != wantErr {
					t.Errorf(
						"%s %x: parseHeader error %v, want %v",
						tt.name, in, err, wantErr)
				}
			default:
				if err != nil || got != want {
					t.Errorf(
						"%s %x: parseHeader = %+v, %v; want %+v",
						tt.name, in, got, err, want)
				}
				if wantN := ws.HeaderSize(want); n != wantN {
					t.Errorf(
						"%s %x: header length %d, want %d",
						tt.name, in, n, wantN)
				}
			}
		}
	}
}

func TestHeadersEnd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want int // -1: not complete
	}{
		{
			name: "crlf",
			in:   "GET / HTTP/1.1\r\nHost: x\r\n\r\nFRAME",
			want: len("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		},
		{
			name: "bare lf",
			in:   "GET / HTTP/1.1\nHost: x\n\nFRAME",
			want: len("GET / HTTP/1.1\nHost: x\n\n"),
		},
		{
			name: "cr inside a line is not a blank line",
			in:   "GET / HTTP/1.1\r\nX: a\r\r\n\r\nFRAME",
			want: len("GET / HTTP/1.1\r\nX: a\r\r\n\r\n"),
		},
		{
			name: "nothing after headers",
			in:   "GET / HTTP/1.1\r\n\r\n",
			want: len("GET / HTTP/1.1\r\n\r\n"),
		},
		{
			name: "blank first line",
			in:   "\r\nGET",
			want: 2,
		},
		{
			name: "incomplete",
			in:   "GET / HTTP/1.1\r\nHost: x\r\n",
			want: -1,
		},
		{
			name: "incomplete after cr",
			in:   "GET / HTTP/1.1\r\nHost: x\r\n\r",
			want: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Searched whole, and 3 bytes at a time as reads would bring them.
			if got := headersEnd([]byte(tt.in), 0); got != tt.want {
				t.Errorf(
					"headersEnd(%q) = %d, want %d",
					tt.in, got, tt.want)
			}
			got := -1
			for from := 0; from < len(tt.in) && got < 0; from += 3 {
				got = headersEnd([]byte(tt.in[:min(from+3, len(tt.in))]), from)
			}
			if got != tt.want {
				t.Errorf(
					"headersEnd(%q) in 3-byte steps = %d, want %d",
					tt.in, got, tt.want)
			}
		})
	}
}
