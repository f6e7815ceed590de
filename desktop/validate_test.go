package desktop

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

var screen = Limits{Screen: Size{Width: 1024, Height: 768}}

func act(js string) Action {
	var a Action
	if err := json.Unmarshal([]byte(js), &a); err != nil {
		panic(err)
	}
	return a
}

func TestValidateAccepts(t *testing.T) {
	for _, js := range []string{
		`{"type":"move","x":0,"y":0}`,
		`{"type":"move","x":1023,"y":767}`,
		`{"type":"click"}`,
		`{"type":"click","x":10,"y":20,"button":"right","count":2,"modifiers":["ctrl","shift"]}`,
		`{"type":"click","button":"back"}`,
		`{"type":"mouse_down","button":"middle"}`,
		`{"type":"mouse_up","x":5,"y":5}`,
		`{"type":"scroll","dy":-3}`,
		`{"type":"scroll","x":100,"y":100,"dx":2,"modifiers":["shift"]}`,
		`{"type":"drag","path":[{"x":1,"y":1},{"x":200,"y":300}]}`,
		`{"type":"key","keys":["ctrl","l"]}`,
		`{"type":"key","keys":["Return"],"settle":{"quiet_ms":50,"timeout_ms":1000}}`,
		`{"type":"key_down","keys":["shift"]}`,
		`{"type":"hold_key","keys":["space"],"duration_ms":500}`,
		`{"type":"type","text":"héllo 東京\n"}`,
		`{"type":"type","text":"long","paste":true,"paste_keys":["ctrl","shift","v"]}`,
		`{"type":"wait","duration_ms":100}`,
		`{"type":"wait"}`,
		`{"type":"launch","app":"xfce4-terminal"}`,
		`{"type":"launch","command":["xterm","-e","top"],"uri":"x"}`,
		`{"type":"open","target":"https://example.test"}`,
		`{"type":"focus_window","window":123}`,
		`{"type":"set_clipboard","text":""}`,
	} {
		a := act(js)
		if err := a.Validate(screen); err != nil {
			t.Errorf("Validate(%s) = %v, want nil", js, err)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		js    string
		code  string
		field string
		msg   string // a part of the message
	}{
		{`{}`, CodeUnknownAction, "type", "has no type"},
		{`{"type":"teleport"}`, CodeUnknownAction, "type", `"teleport"`},
		{`{"type":"move","x":1024,"y":0}`, CodeOutOfBounds, "x", "outside the 1024x768 screen"},
		{`{"type":"move","x":-1,"y":0}`, CodeOutOfBounds, "x", "outside"},
		{`{"type":"move","x":5}`, CodeInvalid, "x", "both x and y"},
		{`{"type":"click","button":"thumb"}`, CodeUnknownButton, "button", `"thumb"`},
		{`{"type":"click","count":11}`, CodeInvalid, "count", "1 to 10"},
		{`{"type":"click","modifiers":["hyperctrl"]}`, CodeUnknownKey, "modifiers", `"hyperctrl"`},
		{`{"type":"click","text":"x"}`, CodeInvalid, "text", `does not take "text"`},
		{`{"type":"scroll"}`, CodeInvalid, "dy", "needs dy"},
		{`{"type":"scroll","dy":1000}`, CodeInvalid, "dy", "at most"},
		{`{"type":"drag","path":[{"x":1,"y":1}]}`, CodeInvalid, "path", "at least two"},
		{`{"type":"drag","path":[{"x":1,"y":1},{"x":5000,"y":1}]}`, CodeOutOfBounds, "path[1]", "outside"},
		{`{"type":"key"}`, CodeInvalid, "keys", "needs keys"},
		{`{"type":"key","keys":["ctrl+l"]}`, CodeUnknownKey, "keys", `["ctrl" "l"]`},
		{`{"type":"key","keys":["Retrun"]}`, CodeUnknownKey, "keys", `"Retrun"`},
		{`{"type":"hold_key","keys":["a"]}`, CodeInvalid, "duration_ms", "1 to 60000"},
		{`{"type":"type"}`, CodeInvalid, "text", "empty"},
		{`{"type":"type","text":"a","paste_keys":["ctrl","v"]}`, CodeInvalid, "paste_keys", "paste: true"},
		{`{"type":"wait","duration_ms":600000}`, CodeInvalid, "duration_ms", "0 to 60000"},
		{`{"type":"launch"}`, CodeInvalid, "app", "either app"},
		{`{"type":"launch","app":"x","command":["y"]}`, CodeInvalid, "app", "either app"},
		{`{"type":"launch","app":"../../bin/sh"}`, CodeInvalid, "app", "not a path"},
		{`{"type":"launch","command":[""]}`, CodeInvalid, "command", "command[0]"},
		{`{"type":"open"}`, CodeInvalid, "target", "needs target"},
		{`{"type":"focus_window"}`, CodeInvalid, "window", "needs window"},
		{`{"type":"move","x":1,"y":1,"settle":{"quiet_ms":-1}}`, CodeInvalid, "settle", "0 to 60000"},
	}
	for _, tt := range tests {
		a := act(tt.js)
		err := a.Validate(screen)
		var de *Error
		if !errors.As(err, &de) {
			t.Errorf("Validate(%s) = %v, want *Error", tt.js, err)
			continue
		}
		if de.Code != tt.code || de.Field != tt.field || !strings.Contains(de.Message, tt.msg) {
			t.Errorf("Validate(%s) = {code %q field %q msg %q}, want code %q field %q msg containing %q",
				tt.js, de.Code, de.Field, de.Message, tt.code, tt.field, tt.msg)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%s) error is not ErrInvalid", tt.js)
		}
	}
}

func TestValidateText(t *testing.T) {
	l := Limits{MaxText: 10}
	long := Action{Type: Type, Text: strings.Repeat("é", 11)}
	err := long.Validate(l)
	var de *Error
	if !errors.As(err, &de) || de.Code != CodeTextTooLong {
		t.Errorf("11 characters over a limit of 10: %v, want text_too_long", err)
	}
	ok := Action{Type: Type, Text: strings.Repeat("é", 10)}
	if err := ok.Validate(l); err != nil {
		t.Errorf("10 characters at a limit of 10: %v", err)
	}
	bad := Action{Type: Type, Text: "a\xffb"}
	if err := bad.Validate(l); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid UTF-8: %v, want ErrInvalid", err)
	}
}

func TestBatchValidate(t *testing.T) {
	b := Batch{Actions: []Action{act(`{"type":"move","x":1,"y":1}`), act(`{"type":"key","keys":["nope"]}`)}}
	err := b.Validate(screen)
	var de *Error
	if !errors.As(err, &de) || de.Index != 1 || de.Code != CodeUnknownKey {
		t.Fatalf("Validate = %v, want unknown_key at index 1", err)
	}
	if !strings.HasPrefix(de.Error(), "action 1: ") {
		t.Errorf("Error() = %q, want it to name action 1", de.Error())
	}
	if err := (&Batch{}).Validate(screen); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty batch: %v, want ErrInvalid", err)
	}
	many := Batch{Actions: make([]Action, 3)}
	for i := range many.Actions {
		many.Actions[i] = Action{Type: Wait}
	}
	if err := many.Validate(Limits{MaxActions: 2}); !errors.Is(err, ErrInvalid) {
		t.Errorf("3 actions over a limit of 2: %v, want ErrInvalid", err)
	}
	shot := Batch{Screenshot: &ScreenshotOptions{Format: "gif"}}
	if err := shot.Validate(screen); !errors.Is(err, ErrInvalid) {
		t.Errorf("gif screenshot: %v, want ErrInvalid", err)
	}
}

func TestScreenshotOptionsValidate(t *testing.T) {
	good := []ScreenshotOptions{{}, {Format: "png"}, {Format: "jpeg", Quality: 50}, {Format: "jpg"},
		{Region: &Rect{0, 0, 1024, 768}}, {Width: 512}, {Cursor: true}}
	for _, o := range good {
		if err := o.Validate(screen.Screen); err != nil {
			t.Errorf("Validate(%+v) = %v", o, err)
		}
	}
	bad := []ScreenshotOptions{{Format: "bmp"}, {Quality: 50}, {Format: "jpeg", Quality: 101},
		{Region: &Rect{0, 0, 1025, 1}}, {Region: &Rect{-1, 0, 10, 10}}, {Region: &Rect{0, 0, 0, 10}}, {Width: -1}, {Width: 10000}}
	for _, o := range bad {
		if err := o.Validate(screen.Screen); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalid", o, err)
		}
	}
}

func TestErrorClasses(t *testing.T) {
	tests := []struct {
		code   string
		class  error
		status int
	}{
		{CodeOutOfBounds, ErrInvalid, 400},
		{CodeUnknownKey, ErrInvalid, 400},
		{CodeNotFound, ErrNotFound, 404},
		{CodeNotReady, ErrUnavailable, 503},
		{CodeTimeout, ErrTimeout, 504},
		{CodeUnauthorized, ErrUnauthorized, 401},
		{CodeTooLarge, ErrTooLarge, 413},
		{CodeConflict, ErrConflict, 409},
		{CodeInternal, ErrInternal, 500},
		{"some_future_code", ErrInternal, 500},
	}
	for _, tt := range tests {
		err := Errorf(tt.code, "x")
		if !errors.Is(err, tt.class) {
			t.Errorf("code %s: not in class %v", tt.code, tt.class)
		}
		if got := HTTPStatus(err); got != tt.status {
			t.Errorf("code %s: HTTPStatus = %d, want %d", tt.code, got, tt.status)
		}
	}
	wrapped := errors.Join(errors.New("ctx"), Errorf(CodeUnknownKey, "bad"))
	if CodeOf(wrapped) != CodeUnknownKey {
		t.Errorf("CodeOf(wrapped) = %q", CodeOf(wrapped))
	}
	if CodeOf(errors.New("plain")) != CodeInternal {
		t.Errorf("CodeOf(plain) = %q, want internal", CodeOf(errors.New("plain")))
	}
}

func TestActionJSON(t *testing.T) {
	a := Action{Type: Click, Button: Right}.At(3, 4)
	b, _ := json.Marshal(a)
	if string(b) != `{"type":"click","x":3,"y":4,"button":"right"}` {
		t.Errorf("Marshal = %s", b)
	}
	p, ok := act(string(b)).Pos()
	if !ok || p != (Point{3, 4}) {
		t.Errorf("Pos = %v, %v", p, ok)
	}
}

// FuzzActionValidate checks that no JSON body makes validation panic and
// that every rejection carries a known code.
func FuzzActionValidate(f *testing.F) {
	for _, s := range []string{`{"type":"click","x":1,"y":2}`, `{"type":"key","keys":["ctrl","l"]}`,
		`{"type":"drag","path":[{"x":1,"y":1},{"x":2,"y":2}]}`, `{"type":"type","text":"x"}`, `{}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var a Action
		if json.Unmarshal([]byte(s), &a) != nil {
			return
		}
		err := a.Validate(screen)
		if err == nil {
			return
		}
		var de *Error
		if !errors.As(err, &de) {
			t.Fatalf("Validate(%s) returned %T, want *Error", s, err)
		}
		if _, ok := codeClass[de.Code]; !ok || de.Message == "" {
			t.Fatalf("Validate(%s) = %+v: unknown code or empty message", s, de)
		}
	})
}
