package httpjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cubicle-dev/cubicle/desktop"
)

type body struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, in string
		optional bool
		code     string // "" for success
		msg      string
	}{
		{"ok", `{"name":"a","count":2}`, false, "", ""},
		{"empty", ``, false, desktop.CodeBadRequest, "empty"},
		{"empty optional", ``, true, "", ""},
		{"syntax", `{"name":}`, false, desktop.CodeBadRequest, "not valid JSON"},
		{"truncated", `{"name":"a"`, false, desktop.CodeBadRequest, "middle of a value"},
		{"type", `{"count":"x"}`, false, desktop.CodeBadRequest, `"count" must be an integer`},
		{"unknown field", `{"nmae":"a"}`, false, desktop.CodeBadRequest, `unknown field "nmae"`},
		{"trailing", `{} {}`, false, desktop.CodeBadRequest, "after the JSON value"},
		{"too large", `{"name":"` + strings.Repeat("x", 200) + `"}`, false, desktop.CodeTooLarge, "over 100 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tt.in))
			var b body
			err := Decode(httptest.NewRecorder(), r, &b, 100, tt.optional)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Decode(%q) = %v", tt.in, err)
				}
				return
			}
			var de *desktop.Error
			if !errors.As(err, &de) || de.Code != tt.code || !strings.Contains(de.Message, tt.msg) {
				t.Errorf("Decode(%q) = %v, want code %s with %q", tt.in, err, tt.code, tt.msg)
			}
		})
	}
}

func TestWriteError(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	r := httptest.NewRequest("GET", "/x", nil)

	w := httptest.NewRecorder()
	WriteError(w, r, log, desktop.Errorf(desktop.CodeOutOfBounds, "point outside"))
	var got struct{ Error desktop.Error }
	json.Unmarshal(w.Body.Bytes(), &got)
	if w.Code != http.StatusBadRequest || got.Error.Code != desktop.CodeOutOfBounds || got.Error.Message != "point outside" {
		t.Errorf("invalid argument: %d %s", w.Code, w.Body)
	}

	w = httptest.NewRecorder()
	WriteError(w, r, log, errors.New("disk on fire at /var/secret"))
	json.Unmarshal(w.Body.Bytes(), &got)
	if w.Code != http.StatusInternalServerError || got.Error.Code != desktop.CodeInternal ||
		strings.Contains(got.Error.Message, "secret") || !strings.Contains(got.Error.Message, "error id") {
		t.Errorf("internal error: %d %s; want 500 with an id and without the cause", w.Code, w.Body)
	}
	if !strings.Contains(logs.String(), "disk on fire") {
		t.Errorf("the cause is not in the log: %s", logs.String())
	}

	w = httptest.NewRecorder()
	WriteError(w, r, log, desktop.Errorf(desktop.CodeUnauthorized, "no key"))
	if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("unauthorized: %d, WWW-Authenticate %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
}
