package metrics

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// ErrorClass is the kind of a failure, as counted and reported.
type ErrorClass uint8

// Error classes. The names are what reports and the result JSON show.
const (
	ErrRefused      ErrorClass = iota // connection refused (TCP RST to SYN, ICMP port unreachable for UDP)
	ErrTimeout                        // connect or handshake not done within the connect timeout
	ErrReset                          // connection reset by peer
	ErrClosedByPeer                   // orderly close (EOF or WebSocket close) from the target mid-run
	ErrHandshake                      // WebSocket upgrade refused or malformed
	ErrTLS                            // TLS handshake or certificate failure
	ErrProtocol                       // bytes that are not a valid frame or measurement header
	ErrUnreachable                    // no route, network unreachable, address not available
	ErrOther                          // anything else; the message is logged
	NumErrorClasses
)

var errorNames = [NumErrorClasses]string{
	"refused", "timeout", "reset", "closed_by_peer", "handshake", "tls", "protocol", "unreachable", "other",
}

// String is the class name used in reports and JSON.
func (c ErrorClass) String() string {
	if c < NumErrorClasses {
		return errorNames[c]
	}
	return "unknown"
}

// ProtocolError marks an error as a protocol violation by the peer.
type ProtocolError struct{ Err error }

func (e *ProtocolError) Error() string { return "protocol error: " + e.Err.Error() }
func (e *ProtocolError) Unwrap() error { return e.Err }

// HandshakeError marks a failed WebSocket upgrade: the TCP connection (and
// TLS) was up, the server's answer to the upgrade request was not a valid
// acceptance. Answer is the start of what the server sent, if anything.
type HandshakeError struct {
	Err    error
	Answer []byte
}

// Error names what the server answered: its HTTP status line, or the first
// bytes if they were not HTTP, or that it answered nothing.
func (e *HandshakeError) Error() string {
	a := e.Answer
	switch {
	case len(a) == 0 && e.Err == nil:
		return "handshake failed"
	case len(a) == 0 && isTimeout(e.Err):
		return "handshake failed: no answer to the upgrade request: " + e.Err.Error()
	case len(a) == 0 && (errors.Is(e.Err, io.EOF) || errors.Is(e.Err, io.ErrUnexpectedEOF)):
		return "handshake failed: the server closed the connection without answering the upgrade request"
	case len(a) == 0:
		return "handshake failed: " + e.Err.Error()
	}
	if bytes.HasPrefix(a, []byte("HTTP/")) {
		line, _, _ := bytes.Cut(a, []byte("\n"))
		msg := fmt.Sprintf("handshake failed: server answered %q", bytes.TrimRight(line, "\r"))
		if bytes.Contains(line, []byte(" 101 ")) && e.Err != nil {
			msg += " but " + e.Err.Error() // switching protocols, with a bad header
		}
		return msg
	}
	return fmt.Sprintf("handshake failed: server answered with bytes that are not HTTP: %q (hex % x)", a[:min(len(a), 64)], a[:min(len(a), 16)])
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// Classify maps an error from dialing, reading or writing to its class.
func Classify(err error) ErrorClass {
	var pe *ProtocolError
	var he *HandshakeError
	var te *tls.CertificateVerificationError
	var re tls.RecordHeaderError
	var ae tls.AlertError
	switch {
	case errors.As(err, &pe):
		return ErrProtocol
	case errors.As(err, &te), errors.As(err, &re), errors.As(err, &ae):
		return ErrTLS
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return ErrReset
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return ErrTimeout
	case errors.As(err, &he):
		return ErrHandshake
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return ErrClosedByPeer
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.EADDRNOTAVAIL):
		return ErrUnreachable
	}
	return ErrOther
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
