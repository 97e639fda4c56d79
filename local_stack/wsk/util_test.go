package main

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestFormattedJSON(t *testing.T) {
	cases := map[[2]string]string{
		{"n", "5"}:            `{"n": 5}`,
		{"o", `{"a":[1]}`}:    `{"o": {"a":[1]}}`,
		{"s", "hello world"}:  `{"s": "hello world"}`,
		{"b", "true"}:         `{"b": true}`,
		{`k"q`, "x"}:          `{"k\"q": "x"}`,
		{"q", `"quoted"`}:     `{"q": "quoted"}`,
		{"bad", `not "json"`}: `{"bad": "not "json""}`, // the real CLI does not escape either
	}
	for in, want := range cases {
		if got := formattedJSON(in[0], in[1]); got != want {
			t.Errorf("formattedJSON(%q, %q) = %s, want %s", in[0], in[1], got, want)
		}
	}
}

func TestJSONObjectMergesAndKeepsNumbers(t *testing.T) {
	data, err := jsonObject([]string{`{"a": 1}`, `{"b": {"c": 2}, "a": 12345678901234567890}`})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(data)
	if string(out) != `{"a":12345678901234567890,"b":{"c":2}}` {
		t.Errorf("got %s", out)
	}
	if _, err := jsonObject([]string{`{"bad": "not "json""}`}); err == nil {
		t.Error("expected an error for invalid JSON")
	}
}

func TestParseQName(t *testing.T) {
	properties.namespace = "_"
	cases := map[string]qname{
		"foo":         {namespace: "_", entity: "foo", name: "foo"},
		"pkg/foo":     {namespace: "_", pkg: "pkg", entity: "foo", name: "pkg/foo"},
		"/ns/foo":     {namespace: "ns", entity: "foo", name: "foo"},
		"/ns/pkg/foo": {namespace: "ns", pkg: "pkg", entity: "foo", name: "pkg/foo"},
		"ns/pkg/foo":  {namespace: "ns", pkg: "pkg", entity: "foo", name: "pkg/foo"},
		"/ns":         {namespace: "ns", entity: "ns"},
	}
	for in, want := range cases {
		got, err := parseQName(in)
		if err != nil || *got != want {
			t.Errorf("parseQName(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ".", "/", "/ns/", "/a/b/c/d", "/ns//x"} {
		if _, err := parseQName(bad); err == nil {
			t.Errorf("parseQName(%q) should fail", bad)
		}
	}
	if got := fullyQualified("pkg/feed"); got != "/_/pkg/feed" {
		t.Errorf("fullyQualified(pkg/feed) = %s", got)
	}
	q, _ := parseQName("pkg/feed")
	if q.full() != "/_/pkg/feed" {
		t.Errorf("full() = %s", q.full())
	}
}

func TestExtractKeyValueArgs(t *testing.T) {
	paramArgs, annotArgs, feedParamArgs, triggerParamArgs = nil, nil, nil, nil
	rest, err := extractKeyValueArgs([]string{"-p", "a", "1", "trigger", "create", "T", "--param", "b", "x y",
		"-a", "k", "v", "-F", "f", "2", "-T", "t", "3", "--feed", "pkg/feed"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rest, []string{"trigger", "create", "T", "--feed", "pkg/feed"}) {
		t.Errorf("rest = %q", rest)
	}
	if !reflect.DeepEqual(paramArgs, []string{`{"a": 1}`, `{"b": "x y"}`}) || len(annotArgs) != 1 ||
		len(feedParamArgs) != 1 || len(triggerParamArgs) != 1 {
		t.Errorf("params %q annots %q feed %q trigger %q", paramArgs, annotArgs, feedParamArgs, triggerParamArgs)
	}
	if _, err := extractKeyValueArgs([]string{"action", "invoke", "x", "-p", "only"}); err == nil {
		t.Error("expected an error for -p without a value")
	}
}
