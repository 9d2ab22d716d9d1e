// Package e2e runs the relay firmware's core, linked with the board's
// WebSocket adapter over a real socket (firmware/test/hostrelay), against
// the real eventrelay binary, publishing through eventrelay's real publish
// endpoint as the portal does.
package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/push"
	"github.com/isobox/isobox/internal/secret"
	"github.com/isobox/isobox/internal/testkit"
)

const sigKey = "e2e-firmware-signature-key-0123456789"

// hostRelay builds firmware/test/hostrelay into a temporary directory.
func hostRelay(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	fw := filepath.Dir(filepath.Dir(file))
	build := t.TempDir()
	out, err := exec.Command("make", "--no-print-directory", "-C", fw, "BUILD="+build, build+"/hostrelay").CombinedOutput()
	if err != nil {
		t.Fatalf("make hostrelay: %v\n%s", err, out)
	}
	return filepath.Join(build, "hostrelay")
}

// relay is eventrelay on a fixed HTTP port, so that a device keeps its
// address across restarts.
type relay struct {
	t        *testing.T
	bin, dir string
	httpAddr string
	args     []string
	p        *testkit.Proc
	// scheme and client reach the publish endpoint: https with the test
	// CA when eventrelay serves TLS (tls_test.go).
	scheme string
	client *http.Client
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startRelay(t *testing.T, extra ...string) *relay {
	r := &relay{t: t, bin: testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay"), dir: t.TempDir(), httpAddr: freePort(t),
		scheme: "http", client: http.DefaultClient}
	r.args = append([]string{"--http-addr", r.httpAddr, "--publish-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--nats-sync-always=false", "--push-signature-key", sigKey}, extra...)
	r.start()
	return r
}

func (r *relay) start() {
	r.p = testkit.Start(r.t, r.dir, r.bin, r.args, "http", "publish", "admin")
}

func (r *relay) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.p.Stop(ctx); err != nil {
		r.t.Fatalf("stop eventrelay: %v\n%s", err, r.p.Logs())
	}
}

// publish posts a message to channel ch (unsigned id) as the portal does.
func (r *relay) publish(ch, body string) {
	r.t.Helper()
	resp, err := r.client.Post(r.scheme+"://"+r.p.Addr("publish")+"/bitrix/pub/?CHANNEL_ID="+ch, "application/json", strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		r.t.Fatalf("publish to %s = %d %s", ch, resp.StatusCode, b)
	}
}

// waitSubscribers polls the online endpoint until ch has n subscribers: a
// device that printed "open" is subscribed before its next publish counts.
func (r *relay) waitSubscribers(ch string, n int) {
	r.t.Helper()
	want := fmt.Sprintf(`{"infos":[{"channel":"%s","subscribers":%d}]}`, ch, n)
	if n == 0 {
		want = `{"infos":[]}`
	}
	deadline := time.Now().Add(30 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		resp, err := r.client.Get(r.scheme + "://" + r.p.Addr("publish") + "/bitrix/pub/?CHANNEL_ID=" + ch)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got = string(b)
			if got == want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("channel %s: online %s, want %d subscribers", ch, got, n)
}

// device is one hostrelay process.
type device struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	seen  []string
}

func startDevice(t *testing.T, bin, addr, channel, relays string, replay bool, extra ...string) *device {
	host, port, _ := net.SplitHostPort(addr)
	args := []string{host, port, channel, relays}
	if replay {
		args = append(args, "replay")
	}
	args = append(args, extra...)
	d := &device{t: t, cmd: exec.Command(bin, args...), lines: make(chan string, 1024)}
	d.cmd.Stderr = os.Stderr
	var err error
	if d.in, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
		close(d.lines)
	}()
	t.Cleanup(func() {
		d.in.Close()
		if err := d.cmd.Wait(); err != nil {
			t.Errorf("hostrelay exited with %v (a sanitizer report is on stderr)", err)
		}
	})
	return d
}

func (d *device) send(cmd string) {
	if _, err := io.WriteString(d.in, cmd+"\n"); err != nil {
		d.t.Fatal(err)
	}
}

// next returns the device's next output line.
func (d *device) next() string {
	d.t.Helper()
	select {
	case l, ok := <-d.lines:
		if !ok {
			d.t.Fatalf("hostrelay exited; output so far:\n%s", strings.Join(d.seen, "\n"))
		}
		d.seen = append(d.seen, l)
		return l
	case <-time.After(30 * time.Second):
		d.t.Fatalf("hostrelay said nothing for 30 s; output so far:\n%s", strings.Join(d.seen, "\n"))
	}
	return ""
}

// until reads lines up to one that starts with prefix and returns the
// relay lines read on the way (without their mids) and the matching line.
func (d *device) until(prefix string) (relayLines []string, match string) {
	d.t.Helper()
	for {
		l := d.next()
		if strings.HasPrefix(l, prefix) {
			return relayLines, l
		}
		if strings.HasPrefix(l, "relay ") {
			relayLines = append(relayLines, l[:strings.Index(l, " mid=")])
		}
	}
}

func esp(device string, on bool) string {
	v := "0"
	if on {
		v = "1"
	}
	return `{"module_id":"application","command":"esp","params":{"device":"` + device + `","value":"` + v + `"}}`
}

func checkLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("%s: relay commands applied\n  %q\nwant\n  %q", what, got, want)
	}
}

// The firmware against the real eventrelay: subscribe, commands, a
// Wi-Fi loss with replay by mid, an eventrelay restart with replay once
// and in order, channel renewal (pull/channel_expire) and, for a freshly
// booted second board, restoring the relays from the start of history.
func TestRelayFirmwareAgainstEventrelay(t *testing.T) {
	bin := hostRelay(t)
	er := startRelay(t)
	signer, err := push.NewSigner(sigKey, "sha1")
	if err != nil {
		t.Fatal(err)
	}
	ch1, ch2 := "5d41402abc4b2a76b9719d911017c592", "7d793037a0760186574b0282f2f435e7"

	d := startDevice(t, bin, er.httpAddr, signer.SignChannel(ch1), "pump:12,fan:13", false, "mac=5ccf7f0a1b2c")
	d.until("open")
	er.waitSubscribers(ch1, 1)
	er.waitDevices(map[string]string{"isobox-relay-5ccf7f0a1b2c": "p" + ch1})

	// Commands switch relays: the blog post's esp and the generic relay.
	er.publish(ch1, esp("pump", true))
	er.publish(ch1, `{"module_id":"application","command":"relay","params":{"relay":"fan","state":"on"}}`)
	er.publish(ch1, esp("heater", true)) // no such relay: ignored
	er.publish(ch1, esp("pump", false))
	got, _ := d.until("relay pump off")
	checkLines(t, "live commands", got, "relay pump on", "relay fan on")

	// Wi-Fi lost: what is published meanwhile comes once, in order, after
	// the reconnect with &mid=.
	d.send("down")
	d.until("close")
	er.waitSubscribers(ch1, 0)
	er.publish(ch1, esp("fan", false))
	er.publish(ch1, esp("pump", true))
	er.publish(ch1, esp("fan", true))
	d.send("up")
	d.until("open")
	got, _ = d.until("relay fan on")
	checkLines(t, "replay after Wi-Fi loss", got, "relay fan off", "relay pump on")
	er.publish(ch1, esp("pump", false)) // a marker: nothing replayed twice before it
	got, _ = d.until("relay pump off")
	checkLines(t, "after the replay", got)

	// A long backlog: the host library takes frames of at most 4 KiB (a
	// board beside its TLS buffers), the device asks for 2 KiB frames
	// (frameBytes=) and gets all 40 commands, once, in order.
	d.send("down")
	d.until("close")
	er.waitSubscribers(ch1, 0)
	var want []string
	for i := 0; i < 40; i++ {
		on := i%2 == 0
		er.publish(ch1, `{"module_id":"application","command":"esp","params":{"device":"fan","value":"`+
			map[bool]string{true: "1", false: "0"}[on]+`","pad":"`+strings.Repeat("p", 200)+`"}}`)
		want = append(want, "relay fan "+map[bool]string{true: "on", false: "off"}[on])
	}
	er.publish(ch1, esp("pump", true))
	d.send("up")
	got, _ = d.until("relay pump on")
	checkLines(t, "a long backlog in small frames", got, want...)

	// eventrelay restarts (the device is cut off meanwhile): the device
	// reconnects by itself and gets what it missed once, in order.
	d.send("down")
	d.until("close")
	er.stop()
	er.start()
	er.publish(ch1, esp("fan", false))
	er.publish(ch1, esp("pump", true))
	d.send("up")
	d.until("open")
	got, _ = d.until("relay pump on")
	checkLines(t, "replay after eventrelay restart", got, "relay fan off")
	// A restart while connected: the device notices the 1001 close and
	// comes back without help.
	er.stop()
	d.until("close")
	er.start()
	d.until("open")
	er.waitSubscribers(ch1, 1)
	er.publish(ch1, esp("fan", true))
	got, _ = d.until("relay fan on")
	checkLines(t, "after a restart while connected", got)

	// The portal renews the channel: channel_expire on the old one names
	// the new one; the device follows at once and obeys commands there.
	er.publish(ch1, `{"module_id":"pull","command":"channel_expire","params":{"action":"reconnect","channel":{"id":"`+
		signer.SignChannel(ch1)+`","type":"shared"},"new_channel":{"id":"`+signer.SignChannel(ch2)+`","type":"shared"}}}`)
	d.until("renewed " + signer.SignChannel(ch2))
	d.until("open")
	er.waitSubscribers(ch2, 1)
	er.publish(ch2, esp("pump", false))
	er.publish(ch2, esp("fan", false))
	er.publish(ch2, esp("pump", true))
	got, _ = d.until("relay pump on")
	checkLines(t, "commands on the renewed channel", got, "relay pump off", "relay fan off")
	// The devices page keeps one record for the board, now on the new
	// channel: it is keyed by the name the firmware sends.
	er.waitDevices(map[string]string{"isobox-relay-5ccf7f0a1b2c": "p" + ch2})

	// A second board boots with "restore relays from history": it asks for
	// everything stored on its channel and ends in the last commanded state.
	d2 := startDevice(t, bin, er.httpAddr, signer.SignChannel(ch2), "pump:12,fan:13", true, "mac=5ccf7f0a1b2d")
	got, _ = d2.until("relay pump on")
	checkLines(t, "replay from start", got, "relay pump off", "relay fan off")
	d2.send("status")
	if _, l := d2.until("status"); !strings.Contains(l, "state=3") {
		t.Fatalf("second board: %s, want open (state=3)", l)
	}
	// Two boards from one address on one channel: two records, by name.
	er.waitDevices(map[string]string{"isobox-relay-5ccf7f0a1b2c": "p" + ch2, "isobox-relay-5ccf7f0a1b2d": "p" + ch2})
	d2.send("quit")
	d.send("quit")
}

// waitDevices polls eventrelay's admin API (the records the console's
// devices page shows) until the connected devices are exactly want (name →
// channel), each from 127.0.0.1, and no record is without a name.
func (r *relay) waitDevices(want map[string]string) {
	r.t.Helper()
	key, err := secret.Read(filepath.Join(r.dir, "data", "relay-admin.key"))
	if err != nil {
		r.t.Fatal(err)
	}
	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequest("GET", "http://"+r.p.Addr("admin")+"/v1/relay/push/devices", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		var ans struct {
			Devices []struct {
				Device, Remote string
				Channels       []string
				Connected      bool
			}
		}
		err = json.NewDecoder(resp.Body).Decode(&ans)
		resp.Body.Close()
		if err != nil {
			continue
		}
		ok := true
		seen := map[string]string{}
		for _, d := range ans.Devices {
			if d.Device == "" || d.Remote != "127.0.0.1" || len(d.Channels) != 1 {
				ok = false
			}
			if d.Connected {
				seen[d.Device] = d.Channels[0]
			}
		}
		got = fmt.Sprintf("%+v", ans.Devices)
		if ok && fmt.Sprint(seen) == fmt.Sprint(want) {
			return
		}
	}
	r.t.Fatalf("devices %s, want connected %v", got, want)
}

func renewal(signer *push.Signer, from, to string) string {
	return `{"module_id":"pull","command":"channel_expire","params":{"action":"reconnect","channel":{"id":"` +
		signer.SignChannel(from) + `","type":"shared"},"new_channel":{"id":"` + signer.SignChannel(to) + `","type":"shared"}}}`
}

// A board that misses the portal's one channel_expire — off across the
// renewal for longer than eventrelay keeps history — comes back on the new
// channel with no human: eventrelay remembers the renewal beyond the
// history and repeats it to subscribers of the old channel. The history is
// made short by size (--push-history-bytes) and pushed out by other
// channels' traffic, so nothing waits for a clock.
func TestRelayRecoversARenewalItMissed(t *testing.T) {
	bin := hostRelay(t)
	er := startRelay(t, "--push-max-payload", "1024", "--push-history-bytes", "16384")
	signer, err := push.NewSigner(sigKey, "sha1")
	if err != nil {
		t.Fatal(err)
	}
	ch1, ch2, ch3 := "0cc175b9c0f1b6a831c399e269772661", "92eb5ffee6ae2fec3ad71c777531578f", "4a8a08f09d37b73795649038408b5f33"
	other := "8277e0910d750195b448797616e091ad"
	flood := func() {
		for i := 0; i < 200; i++ {
			er.publish(other, `{"module_id":"application","command":"noise","params":{"n":`+fmt.Sprint(i)+`,"pad":"`+strings.Repeat("x", 64)+`"}}`)
		}
	}

	d := startDevice(t, bin, er.httpAddr, signer.SignChannel(ch1), "pump:12,fan:13", false)
	d.until("open")
	er.waitSubscribers(ch1, 1)
	er.publish(ch1, esp("pump", true))
	d.until("relay pump on")

	// Off across a renewal, back while the history still has it: the
	// replay carries the channel_expire.
	d.send("down")
	d.until("close")
	er.publish(ch1, renewal(signer, ch1, ch2))
	er.publish(ch2, esp("fan", true))
	d.send("up")
	d.until("renewed " + signer.SignChannel(ch2))
	got, _ := d.until("relay fan on")
	checkLines(t, "after a renewal within the history", got)

	// Off across the next renewal and longer than the history: the
	// channel_expire and the commands around it are gone from the stream.
	d.send("down")
	d.until("close")
	er.waitSubscribers(ch2, 0)
	er.publish(ch2, renewal(signer, ch2, ch3))
	er.publish(ch3, esp("pump", false)) // lost with the history
	flood()
	// A restart also empties eventrelay's in-memory copy of recent
	// messages, so the replay reads the (truncated) stream.
	er.stop()
	er.start()
	er.publish(ch3, esp("fan", false))
	d.send("up")
	d.until("renewed " + signer.SignChannel(ch3))
	got, _ = d.until("relay fan off")
	checkLines(t, "after a renewal beyond the history", got)
	d.send("status")
	if _, l := d.until("status"); !strings.Contains(l, " gaps=1 ") {
		t.Fatalf("device: %s; want one history gap (the renewal was no longer stored)", l)
	}
	er.waitSubscribers(ch3, 1)
	er.publish(ch3, esp("pump", false))
	got, _ = d.until("relay pump off")
	checkLines(t, "live on the renewed channel", got)

	// A board that boots with a channel two renewals old follows the chain.
	d2 := startDevice(t, bin, er.httpAddr, signer.SignChannel(ch1), "pump:12,fan:13", false)
	d2.until("renewed " + signer.SignChannel(ch2))
	d2.until("renewed " + signer.SignChannel(ch3))
	d2.until("open")
	er.waitSubscribers(ch3, 2)
	er.publish(ch3, esp("fan", true))
	d2.until("relay fan on")
	d.until("relay fan on")
	d2.send("quit")
	d.send("quit")
}
