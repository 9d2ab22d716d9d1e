package phpform_test

import (
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/phpform"
)

// A Bitrix queue item as the portal's json_encode would write it (§2.3 of
// bitrix-wire.md), with the types PHP gives it: bools, ints, nulls, nesting.
const queueItem = `{"client_id":"local.5c8bb1b0891cf2.87252039","additional":{"category":"default","sendAuth":true,"sendRefreshToken":false},"auth":{"EVENT_SESSION":7,"LOCAL_USER":1,"application_token":"0f9c6c8e"},"query":{"DOMAIN":"portal.example.local","QUERY_URL":"http://10.0.0.5/handler.php?x=1&y=2","QUERY_DATA":{"event":"ONCRMDEALUPDATE","event_handler_id":"15","data":{"FIELDS":{"ID":"7","TITLE":"Сделка №1 & <b>co</b>","EMPTY":[],"NULL":null,"LIST":["a","b c","~*'()"]}},"ts":"1732350000"}}}`

var jsonCases = []string{
	queueItem,
	`{"a":"1","b":{"c":"2","d":["x","y"]},"e":true,"f":false,"g":null,"h":1.5,"i":-3}`,
	`["zero","one",{"two":"2"}]`,
	`{"spaces and.dots":"v","unicode":"привет","symbols":"!@#$%^&*()+=[]{}|;:',<>/?~` + "`" + `"}`,
	`{"deep":{"a":{"b":{"c":{"d":"e"}}}},"empty":{}}`,
}

// php runs the real PHP interpreter over each input with script, which reads
// $in and must echo the output; it returns the outputs in order.
func php(t *testing.T, script string, inputs []string) []string {
	t.Helper()
	prog := `$cases = json_decode(stream_get_contents(STDIN), true); $out = [];
foreach ($cases as $in) { ob_start(); ` + script + `; $out[] = ob_get_clean(); }
echo json_encode($out);`
	cmd := exec.Command("php", "-r", prog)
	in, _ := json.Marshal(inputs)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("php: %v (is php-cli installed? run `make test`)", err)
	}
	var res []string
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("php output %q: %v", out, err)
	}
	return res
}

func TestEncodeMatchesHTTPBuildQuery(t *testing.T) {
	want := php(t, `echo http_build_query(json_decode($in, true))`, jsonCases)
	for i, c := range jsonCases {
		var a phpform.Array
		if err := json.Unmarshal([]byte(c), &a); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if got := phpform.Encode(&a); got != want[i] {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want[i])
		}
	}
}

func TestDecodeMatchesParseStr(t *testing.T) {
	bodies := []string{
		"a=1&b[c]=2&b[d][]=x&b[d][]=y",
		"a[]=1&a[]=2&a[5]=3&a[]=4",
		"x=1&x=2",
		"my.name=1&my+space=2&arr[a.b]=3",
		"k=%D0%BF%D1%80%D0%B8&plus=a+b&enc=%26%3D%5B%5D",
		"broken[=1&ok=2",
		"a[b]c=1&a[x][y]z=2",
		"QUERY%5B0%5D%5Bclient_id%5D=local.1&QUERY%5B0%5D%5Bauth%5D%5BLOCAL_USER%5D=5",
		"",
		"&&a=1&",
		// The next integer key, kept incrementally since the decoder is linear.
		"a[07]=1&a[]=2&a[-0]=3&a[]=4&a[+9]=5&a[]=6",
		"a[-3]=1&a[]=2&b[0]=x&b[10]=y&b[]=z&b[3]=w&b[]=v",
		"a[x][]=1&a[x][]=2&a[y][][]=3&a[y][][]=4&a[x][]=5",
		"a[00]=1&a[]=2&a[1]=3&a[]=4",
		"a[-3]=1&a[-5]=2&a[]=3",
		"a[9223372036854775806]=1&a[]=2&a[]=3&a[x]=4&a[][y]=5",
		"a[-9223372036854775808]=1&a[]=2&a[9223372036854775808]=3&a[]=4",
	}
	want := php(t, `parse_str($in, $r); echo http_build_query($r)`, bodies)
	for i, body := range bodies {
		a, err := phpform.Decode(body)
		if err != nil {
			t.Fatalf("Decode(%q): %v", body, err)
		}
		if got := phpform.Encode(a); got != want[i] {
			t.Errorf("Decode(%q) re-encoded:\n got %s\nwant %s", body, got, want[i])
		}
	}
}

func TestDecodeLimits(t *testing.T) {
	if _, err := phpform.Decode(strings.Repeat("a[]=1&", phpform.MaxVars+1)); !errors.Is(err, phpform.ErrTooManyVars) {
		t.Errorf("too many vars: %v", err)
	}
	if _, err := phpform.Decode("a" + strings.Repeat("[x]", phpform.MaxDepth+1) + "=1"); !errors.Is(err, phpform.ErrTooDeep) {
		t.Errorf("too deep: %v", err)
	}
	if _, err := phpform.Decode("a=%zz"); !errors.Is(err, phpform.ErrBadEscape) {
		t.Errorf("bad escape: %v", err)
	}
}

func TestArrayAccessors(t *testing.T) {
	a, err := phpform.Decode("QUERY[0][client_id]=c&QUERY[0][auth][LOCAL_USER]=5&QUERY[1][client_id]=d")
	if err != nil {
		t.Fatal(err)
	}
	q := a.Array("QUERY")
	if q.Len() != 2 || q.Array("0").String("client_id") != "c" || q.Array("0").Array("auth").String("LOCAL_USER") != "5" {
		t.Fatalf("unexpected structure: %s", phpform.Encode(a))
	}
	q.Delete("0")
	if q.Len() != 1 || q.Keys()[0] != "1" {
		t.Fatalf("Delete: keys %v", q.Keys())
	}
	q.Append("x")
	if q.Keys()[1] != "2" {
		t.Fatalf("Append used key %q, want 2", q.Keys()[1])
	}
}

func TestJSONRoundTripKeepsOrder(t *testing.T) {
	var a phpform.Array
	if err := json.Unmarshal([]byte(`{"z":"1","a":["x","y"],"m":{"2":"b","1":"a"}}`), &a); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(&a)
	if string(b) != `{"z":"1","a":["x","y"],"m":{"2":"b","1":"a"}}` {
		t.Fatalf("round trip = %s", b)
	}
	for _, bad := range []string{`"str"`, `{"a":`, `{"a":1}x`, `12`} {
		var x phpform.Array
		if err := json.Unmarshal([]byte(bad), &x); err == nil {
			t.Errorf("Unmarshal(%s) accepted", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("a=1&b[c]=2&b[d][]=x")
	f.Add("QUERY%5B0%5D%5Bclient_id%5D=local.1")
	f.Add("a[[]]=1&]=2&[=3&a[b=4")
	f.Fuzz(func(t *testing.T, body string) {
		a, err := phpform.Decode(body)
		if err != nil {
			return
		}
		// What we decode we can encode, and decoding that again is stable.
		enc := phpform.Encode(a)
		b, err := phpform.Decode(enc)
		if err != nil {
			t.Fatalf("re-decode of %q: %v", enc, err)
		}
		if enc2 := phpform.Encode(b); enc2 != enc {
			t.Fatalf("unstable: %q -> %q", enc, enc2)
		}
	})
}

func FuzzJSON(f *testing.F) {
	f.Add(queueItem)
	f.Add(`[1,true,null,{"a":[]}]`)
	f.Fuzz(func(t *testing.T, s string) {
		var a phpform.Array
		if json.Unmarshal([]byte(s), &a) != nil {
			return
		}
		phpform.Encode(&a)
		if _, err := json.Marshal(&a); err != nil {
			t.Fatal(err)
		}
	})
}
