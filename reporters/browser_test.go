package reporters

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromiumNames are the executables tried, in order, after $SOCKBENCH_CHROMIUM.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell"}

// findChromium returns a Chromium executable, or "" if there is none.
func findChromium() string {
	if p := os.Getenv("SOCKBENCH_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range chromiumNames {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// probeScript, appended to a report, opens every collapsed section (an
// overlay's runs, a capacity search's steps), measures every chart as laid
// out by the browser and writes the sizes into the DOM for --dump-dom to
// show.
const probeScript = `<script>
document.querySelectorAll("details").forEach(d => { d.open = true; });
const charts = [...document.querySelectorAll("svg.chart")].map(s => {
  const r = s.getBoundingClientRect();
  return {w: r.width, h: r.height, lines: [...s.querySelectorAll("polyline")].map(p => p.getBBox().width),
          bars: [...s.querySelectorAll("rect")].length};
});
const pre = document.createElement("pre");
pre.id = "probe";
pre.textContent = JSON.stringify(charts);
document.body.appendChild(pre);
</script>
`

type chartBox struct {
	W, H  float64
	Lines []float64 // drawn width of each polyline
	Bars  int
}

// TestHTMLInBrowser renders reports in headless Chromium and checks that
// every chart is there, laid out with a non-zero size, and that its lines
// were drawn. It skips only when no Chromium is installed.
func TestHTMLInBrowser(t *testing.T) {
	bin := findChromium()
	if bin == "" {
		t.Skipf("no Chromium: none of %s on PATH and $SOCKBENCH_CHROMIUM unset; install Debian's chromium (.ci/run does) to run the browser test", strings.Join(chromiumNames, ", "))
	}
	cases := []struct {
		name   string
		render func(t *testing.T) string
		charts int
	}{
		{"echo", func(t *testing.T) string { return renderHTML(t, richResult(t, false)) }, 5},
		{"broadcast", func(t *testing.T) string { return renderHTML(t, richResult(t, true)) }, 8},
		{"repetitions", func(t *testing.T) string { return renderHTML(t, repeated(t, false)) }, 7},
		{"overlay", func(t *testing.T) string {
			return renderOverlay(t, Labelled{"a.json", richResult(t, false)}, Labelled{"b.json", repeated(t, false)})
		}, 3 + 5 + 7},
		{"capacity", func(t *testing.T) string {
			var b bytes.Buffer
			if err := HTMLCapacity(&b, capacity(t, true, false)); err != nil {
				t.Fatal(err)
			}
			return b.String()
		}, 3 + 3*8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Not parallel: one browser at a time on a small machine.
			page := strings.Replace(tc.render(t), "</body>", probeScript+"</body>", 1)
			dir := t.TempDir()
			file := filepath.Join(dir, "report.html")
			if err := os.WriteFile(file, []byte(page), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
				"--no-first-run", "--user-data-dir="+filepath.Join(dir, "profile"), "--window-size=1000,2000",
				"--dump-dom", "file://"+file)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s: %v\nstderr:\n%s", bin, err, stderr.String())
			}
			m := regexp.MustCompile(`(?s)<pre id="probe">(.*?)</pre>`).FindStringSubmatch(stdout.String())
			if m == nil {
				t.Fatalf("the probe did not run; DOM:\n%.3000s\nstderr:\n%s", stdout.String(), stderr.String())
			}
			var boxes []chartBox
			if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &boxes); err != nil {
				t.Fatalf("probe output %q: %v", m[1], err)
			}
			t.Logf("charts as laid out: %+v", boxes)
			if len(boxes) != tc.charts {
				t.Fatalf("%d charts in the browser, want %d", len(boxes), tc.charts)
			}
			for i, b := range boxes {
				if b.W < 100 || b.H < 100 {
					t.Errorf("chart %d is %vx%v px, want at least 100x100", i, b.W, b.H)
				}
				if len(b.Lines) == 0 && b.Bars == 0 {
					t.Errorf("chart %d has no series and no bars", i)
				}
				for j, w := range b.Lines {
					if w <= 0 {
						t.Errorf("chart %d line %d drawn %v px wide", i, j, w)
					}
				}
			}
		})
	}
}
