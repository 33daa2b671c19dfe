package engine_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/sockbench/sockbench/internal/engine"
	"github.com/sockbench/sockbench/internal/metrics"
	"github.com/sockbench/sockbench/internal/plan"
)

// selfSignedCert returns a certificate for 127.0.0.1 signed by its own key,
// valid for an hour: no system root trusts it.
func selfSignedCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sockbench test"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// plainWSS is a WebSocket echo server behind TLS with a self-signed
// certificate, counting the messages it echoes.
func plainWSS(t *testing.T) *countingEcho {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{selfSignedCert(t)}})
	if err != nil {
		t.Fatal(err)
	}
	e := &countingEcho{addr: ln.Addr().String()}
	var (
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return false
		}
		conns = append(conns, c)
		return true
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !track(c) {
				c.Close()
				return
			}
			go func() {
				defer c.Close()
				// The TLS handshake runs inside the upgrade's first read; a
				// client that rejects the certificate ends it there.
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := ws.Upgrade(c); err != nil {
					return
				}
				_ = c.SetDeadline(time.Time{})
				for {
					b, op, err := wsutil.ReadClientData(c)
					if err != nil {
						return
					}
					if err := wsutil.WriteServerMessage(c, op, b); err != nil {
						return
					}
					e.n.Add(1)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return e
}

func wssPlan(addr string, insecure bool) *plan.Plan {
	p := newPlan(plan.WS, addr, "")
	p.Target.URL = "wss://" + addr + "/"
	p.Target.TLS, p.Target.Insecure = true, insecure
	p.Phases[0].Conns, p.Phases[0].PerConnRate = 5, 50
	return p
}

func TestWSS(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		insecure bool
		wantErr  bool
	}{
		// --insecure: the self-signed certificate is accepted and the run is
		// the same as over plain ws.
		{"insecure", true, false},
		// Verification on: the certificate is signed by no trusted root, the
		// probe fails and the failure counts as a TLS error.
		{"verified", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := plainWSS(t)
			p := wssPlan(srv.addr, tc.insecure)
			if !tc.wantErr {
				c, h := run(t, "goroutine", p) // probes first
				checkAccounting(t, p, c, h)
				if got, want := srv.n.Load(), c.Sent+c.WarmupSent; got != want {
					t.Errorf("server echoed %d, client sent %d", got, want)
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := engine.Probe(ctx, p)
			if err == nil {
				t.Fatalf("probe of a self-signed wss target without --insecure succeeded")
			}
			if got, want := metrics.Classify(err), metrics.ErrTLS; got != want {
				t.Errorf("Classify(%v) = %s, want %s", err, got, want)
			}
		})
	}
}
