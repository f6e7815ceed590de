package desktop

// ActionType names one kind of action.
type ActionType string

// The actions a desktop understands.
const (
	// Pointer.
	Move      ActionType = "move"       // x, y
	Click     ActionType = "click"      // [x, y], button, count, modifiers
	MouseDown ActionType = "mouse_down" // [x, y], button
	MouseUp   ActionType = "mouse_up"   // [x, y], button
	Scroll    ActionType = "scroll"     // [x, y], dx, dy, modifiers
	Drag      ActionType = "drag"       // path (at least two points), button, modifiers

	// Keyboard.
	Key     ActionType = "key"      // keys: a combination pressed together and released in reverse
	KeyDown ActionType = "key_down" // keys pressed and left down
	KeyUp   ActionType = "key_up"   // keys released
	HoldKey ActionType = "hold_key" // keys held for duration_ms
	Type    ActionType = "type"     // text, typed as key strokes or pasted

	// Other.
	Wait         ActionType = "wait"          // duration_ms
	Launch       ActionType = "launch"        // app (.desktop name) or command (argv), uri
	Open         ActionType = "open"          // target: a file path or URL
	FocusWindow  ActionType = "focus_window"  // window
	SetClipboard ActionType = "set_clipboard" // text
)

// ActionTypes lists every action type, in the order of the documentation.
var ActionTypes = []ActionType{
	Move, Click, MouseDown, MouseUp, Scroll, Drag,
	Key, KeyDown, KeyUp, HoldKey, Type,
	Wait, Launch, Open, FocusWindow, SetClipboard,
}

// Button names a mouse button.
type Button string

// The mouse buttons.
const (
	Left    Button = "left"
	Middle  Button = "middle"
	Right   Button = "right"
	Back    Button = "back"
	Forward Button = "forward"
)

// X11Button is the X core protocol button number of b, or 0 when b is not a
// button name.
func (b Button) X11Button() byte {
	switch b {
	case Left, "":
		return 1
	case Middle:
		return 2
	case Right:
		return 3
	case Back:
		return 8
	case Forward:
		return 9
	}
	return 0
}

// Point is a position on the screen in pixels, (0, 0) at the top left.
type Point struct {
	X int `json:"x"`
	Y int `json:"y"`
}

// Size is a width and height in pixels.
type Size struct {
	Width  int `json:"width"`
	Height int `json:"height"`
}

// Rect is a rectangle on the screen.
type Rect struct {
	X      int `json:"x"`
	Y      int `json:"y"`
	Width  int `json:"width"`
	Height int `json:"height"`
}

// Settle asks to wait, after an action or a batch, until the screen has not
// changed for QuietMS milliseconds, or TimeoutMS has passed.
type Settle struct {
	QuietMS   int `json:"quiet_ms,omitempty"`   // default 100
	TimeoutMS int `json:"timeout_ms,omitempty"` // default 2000
}

// Action is one thing to do on a desktop. Type says which; the other fields
// are its arguments, and a field that does not belong to the type is an
// error (see Validate).
type Action struct {
	Type ActionType `json:"type"`

	// X and Y place the pointer before the action; absent means "where it is".
	X *int `json:"x,omitempty"`
	Y *int `json:"y,omitempty"`

	Button    Button   `json:"button,omitempty"`    // default left
	Count     int      `json:"count,omitempty"`     // clicks: 1 (default), 2 double, 3 triple
	Modifiers []string `json:"modifiers,omitempty"` // keys held during a click, scroll or drag

	Keys []string `json:"keys,omitempty"` // key names, pressed together

	Text      string   `json:"text,omitempty"`
	Paste     bool     `json:"paste,omitempty"`      // type: put text on the clipboard and press paste_keys
	PasteKeys []string `json:"paste_keys,omitempty"` // default ctrl+v

	DX int `json:"dx,omitempty"` // scroll: clicks right (negative: left)
	DY int `json:"dy,omitempty"` // scroll: clicks down (negative: up)

	Path []Point `json:"path,omitempty"` // drag: from the first point through the others to the last

	DurationMS int `json:"duration_ms,omitempty"` // wait, hold_key

	App     string   `json:"app,omitempty"`     // launch: a .desktop file name, with or without ".desktop"
	Command []string `json:"command,omitempty"` // launch: argv, run without a shell
	URI     string   `json:"uri,omitempty"`     // launch: a file or URL to hand to the app
	Target  string   `json:"target,omitempty"`  // open: a file path or URL

	Window uint32 `json:"window,omitempty"` // focus_window

	// Settle waits for the screen to go quiet after this action.
	Settle *Settle `json:"settle,omitempty"`
}

// At returns a copy of a positioned at (x, y).
func (a Action) At(x, y int) Action {
	a.X, a.Y = &x, &y
	return a
}

// Pos returns the action's position and whether it has one.
func (a Action) Pos() (Point, bool) {
	if a.X == nil || a.Y == nil {
		return Point{}, false
	}
	return Point{X: *a.X, Y: *a.Y}, true
}

// ScreenshotOptions shapes a screenshot.
type ScreenshotOptions struct {
	Format  string `json:"format,omitempty"`  // "png" (default) or "jpeg"
	Quality int    `json:"quality,omitempty"` // jpeg: 1..100, default 80
	Region  *Rect  `json:"region,omitempty"`  // a part of the screen; default all of it
	// Width and Height scale the picture to that size. With only one of them
	// the other follows the aspect ratio.
	Width  int  `json:"width,omitempty"`
	Height int  `json:"height,omitempty"`
	Cursor bool `json:"cursor,omitempty"` // draw the mouse pointer in
}

// Image is an encoded screenshot.
type Image struct {
	Format string `json:"format"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Data   []byte `json:"data"` // base64 in JSON
	// Cached is true when nothing was drawn since the previous screenshot
	// with the same options, so the previous encoding was returned.
	Cached bool `json:"cached"`
}

// Batch is an ordered list of actions, run one after the other. The batch
// stops at the first failure.
type Batch struct {
	Actions []Action `json:"actions"`
	// Settle waits for the screen to go quiet after the last action.
	Settle *Settle `json:"settle,omitempty"`
	// Screenshot, when set, takes a screenshot after the batch (and after
	// Settle) and returns it in the result.
	Screenshot *ScreenshotOptions `json:"screenshot,omitempty"`
}

// ActionResult is what one action reports.
type ActionResult struct {
	Index      int        `json:"index"`
	Type       ActionType `json:"type"`
	DurationMS float64    `json:"duration_ms"`
	// Cursor is the pointer position after a pointer action.
	Cursor *Point `json:"cursor,omitempty"`
	// PID is the process started by launch or open.
	PID int `json:"pid,omitempty"`
	// Settled is false when a settle wait ran into its timeout.
	Settled *bool `json:"settled,omitempty"`
}

// BatchResult is what a batch reports: the results of the actions that ran,
// the error that stopped it (Error.Index says which action), and the
// screenshot when one was asked for and the batch succeeded.
type BatchResult struct {
	Completed  int            `json:"completed"`
	Results    []ActionResult `json:"results"`
	Error      *Error         `json:"error,omitempty"`
	Settled    *bool          `json:"settled,omitempty"`
	Screenshot *Image         `json:"screenshot,omitempty"`
	DurationMS float64        `json:"duration_ms"`
}

// Window is a top-level application window.
type Window struct {
	ID       uint32 `json:"id"`
	Title    string `json:"title"`
	Class    string `json:"class"`    // WM_CLASS class, e.g. "Xfce4-terminal"
	Instance string `json:"instance"` // WM_CLASS instance, e.g. "xfce4-terminal"
	PID      int    `json:"pid,omitempty"`
	Rect
	Focused bool `json:"focused"`
}

// Readiness is the state of a desktop's display stack.
type Readiness struct {
	Ready bool `json:"ready"`
	// Parts says, per supervised part (xvfb, session, vnc), whether it runs
	// and how often it was restarted.
	Parts  []PartStatus `json:"parts,omitempty"`
	Reason string       `json:"reason,omitempty"` // why it is not ready yet
	Screen *Size        `json:"screen,omitempty"`
}

// PartStatus is the state of one supervised process.
type PartStatus struct {
	Name     string `json:"name"`
	Running  bool   `json:"running"`
	PID      int    `json:"pid,omitempty"`
	Restarts int    `json:"restarts"`
	Error    string `json:"error,omitempty"`
}
