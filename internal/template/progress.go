package template

import (
	"bufio"
	"io"
	"strconv"
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Phase is a stage of a build.
type Phase string

// The phases of a build, in the order they happen. A build found in the
// store reports PhaseDone only.
const (
	PhaseWait     Phase = "wait"     // another build of the same recipe runs; this one waits for it
	PhaseIndex    Phase = "index"    // downloading the release file and the package index
	PhaseResolve  Phase = "resolve"  // resolving dependencies and sizing packages
	PhaseDownload Phase = "download" // downloading packages
	PhaseExtract  Phase = "extract"  // extracting the required packages
	PhaseInstall  Phase = "install"  // unpacking and configuring packages with dpkg
	PhaseSteps    Phase = "steps"    // creating the user and running the recipe's steps
	PhaseFinish   Phase = "finish"   // cleaning caches, measuring, recording, moving into place
	PhaseDone     Phase = "done"     // the template is ready
)

// Phases lists every phase in order.
func Phases() []Phase {
	return []Phase{PhaseWait, PhaseIndex, PhaseResolve, PhaseDownload, PhaseExtract,
		PhaseInstall, PhaseSteps, PhaseFinish, PhaseDone}
}

// Progress is a report from a running build. Done counts what the phase
// has got through out of Total (packages, steps); Total is 0 when it is not
// known. In PhaseIndex both are a percentage (Total is 100); in
// PhaseInstall every package counts twice, once unpacked and once
// configured. Message says
// what happens now, as "Retrieving libc6 2.36-9".
type Progress struct {
	Phase   Phase
	Done    int
	Total   int
	Message string
}

// Percent is Done as a percentage of Total, or -1 when Total is unknown.
func (p Progress) Percent() int {
	if p.Total <= 0 {
		return -1
	}
	d := min(max(p.Done, 0), p.Total)
	return d * 100 / p.Total
}

// debootstrapParser turns the machine-readable stream debootstrap writes
// to file descriptor 3 when run with --debian-installer into Progress.
// The stream is made of records:
//
//	P: <now> <end> [<NAME>]   progress of the stage NAME (or of the last one)
//	PF:/PA:                   the progress record's description
//	I: <NAME> / W: <NAME>     an information or a warning, followed by
//	IA:/WA: <arg>             its arguments and
//	IF:/WF: <printf format>   its text, which ends the record
//	E: <NAME>, EA:, EF:       the error that ends the run
//
// Packages are counted as their "Retrieving", "Extracting", "Unpacking"
// and "Configuring" records arrive, against the number of packages the
// resolve stage sized.
type debootstrapParser struct {
	emit func(Progress)

	phase     Phase
	stage     string // debootstrap's name of the current stage, as DOWNDEBS
	pkgTotal  int    // packages debootstrap resolved
	extTotal  int    // packages the extract stage extracts
	counts    map[Phase]int
	installed map[string]int // UNPACKING and CONFIGURING records counted
	last      Progress       // the last report, for records that carry no count
	indexPct  int

	kind byte // 'I', 'W' or 'E' while a record is open, else 0
	name string
	args []string

	errName string // the NAME of the E: record, if one came
	errMsg  string
}

func newDebootstrapParser(emit func(Progress)) *debootstrapParser {
	if emit == nil {
		emit = func(Progress) {}
	}
	return &debootstrapParser{emit: emit, phase: PhaseIndex, last: Progress{Phase: PhaseIndex, Total: 100}, counts: map[Phase]int{}, installed: map[string]int{}, indexPct: -1}
}

// run reads the stream until EOF or a read error.
func (p *debootstrapParser) run(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		p.line(sc.Text())
	}
	return sc.Err()
}

// line handles one line of the stream.
func (p *debootstrapParser) line(l string) {
	tag, rest, ok := strings.Cut(l, ": ")
	if !ok {
		tag, rest, ok = strings.Cut(l, ":")
		if !ok {
			return
		}
	}
	switch tag {
	case "P":
		p.progressRecord(strings.Fields(rest))
	case "I", "W", "E":
		p.kind, p.name, p.args = tag[0], strings.TrimSpace(rest), nil
	case "IA", "WA", "EA":
		if p.kind == tag[0] {
			p.args = append(p.args, rest)
		}
	case "IF", "WF", "EF":
		if p.kind == tag[0] {
			p.record(printfS(rest, p.args))
		}
		p.kind, p.name, p.args = 0, "", nil
	}
}

func (p *debootstrapParser) progressRecord(f []string) {
	if len(f) < 2 {
		return
	}
	now, err1 := strconv.Atoi(f[0])
	end, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || now < 0 || end < 0 {
		return
	}
	if len(f) >= 3 {
		p.stage = f[2]
		p.setPhase(stagePhase(f[2], p.phase))
		switch f[2] {
		case "SIZEDEBS":
			p.pkgTotal = end
			p.report(PhaseResolve, now, end, "Finding package sizes")
		case "EXTRACTPKGS":
			p.extTotal = end
		}
	}
	// Only the package index takes long enough to show; the release
	// file and its signature count as nothing done yet.
	if p.phase == PhaseIndex && end > 0 && (p.stage == "DOWNPKGS" || p.stage == "DOWNMAINPKGS") {
		pct := min(now, end) * 100 / end
		if pct != p.indexPct {
			p.indexPct = pct
			p.report(PhaseIndex, pct, 100, p.last.Message)
		}
	}
}

// stagePhase maps a debootstrap progress stage to a phase.
func stagePhase(stage string, cur Phase) Phase {
	switch stage {
	case "DOWNREL", "DOWNRELSIG", "DOWNPKGS", "DOWNMAINPKGS":
		return PhaseIndex
	case "SIZEDEBS":
		return PhaseResolve
	case "DOWNDEBS":
		return PhaseDownload
	case "EXTRACTPKGS":
		return PhaseExtract
	case "INSTCORE", "UNPACKREQ", "UNPACKBASE", "CONFREQ", "CONFBASE":
		return PhaseInstall
	}
	return cur
}

func (p *debootstrapParser) setPhase(ph Phase) {
	if ph == p.phase {
		return
	}
	p.phase = ph
	p.last = Progress{Phase: ph, Total: p.total(ph)}
}

func (p *debootstrapParser) total(ph Phase) int {
	switch ph {
	case PhaseIndex:
		return 100
	case PhaseExtract:
		return p.extTotal
	case PhaseDownload, PhaseResolve:
		return p.pkgTotal
	case PhaseInstall:
		return 2 * p.pkgTotal
	}
	return 0
}

// record handles a complete I:, W: or E: record.
func (p *debootstrapParser) record(msg string) {
	switch p.kind {
	case 'E':
		p.errName, p.errMsg = p.name, msg
		return
	case 'W':
		p.report(p.phase, p.last.Done, p.last.Total, "warning: "+msg)
		return
	}
	switch p.name {
	case "RETRIEVING":
		if p.phase == PhaseDownload {
			p.count(PhaseDownload, msg)
			return
		}
	case "EXTRACTING":
		p.setPhase(PhaseExtract)
		p.count(PhaseExtract, msg)
		return
	case "UNPACKING", "CONFIGURING":
		// debootstrap unpacks and configures the required packages,
		// then the others: one phase, each package counted once
		// unpacked and once configured.
		p.setPhase(PhaseInstall)
		if p.pkgTotal == 0 || p.installed[p.name] < p.pkgTotal {
			p.installed[p.name]++
		}
		p.report(PhaseInstall, p.installed["UNPACKING"]+p.installed["CONFIGURING"], p.total(PhaseInstall), msg)
		return
	case "VALIDATING":
		return // one per package, right after its Retrieving
	case "RESOLVEREQ", "RESOLVEBASE":
		p.setPhase(PhaseResolve)
	case "BASESUCCESS":
		// Packages dpkg configured as a group have no record each.
		p.report(PhaseInstall, p.total(PhaseInstall), p.total(PhaseInstall), msg)
		return
	}
	p.report(p.phase, p.last.Done, p.last.Total, msg)
}

func (p *debootstrapParser) count(ph Phase, msg string) {
	p.counts[ph]++
	p.report(ph, p.counts[ph], p.total(ph), msg)
}

func (p *debootstrapParser) report(ph Phase, done, total int, msg string) {
	if total > 0 && done > total {
		done = total
	}
	p.last = Progress{Phase: ph, Done: done, Total: total, Message: msg}
	p.emit(p.last)
}

// err is the error debootstrap reported, classified, or nil.
func (p *debootstrapParser) err() error {
	if p.errName == "" {
		return nil
	}
	return &debootstrapError{Name: p.errName, Message: p.errMsg}
}

// debootstrapError is the E: record debootstrap ended with.
type debootstrapError struct {
	Name    string // debootstrap's name for it, as LEFTOVERDEBS
	Message string
}

func (e *debootstrapError) Error() string {
	if e.Message == "" {
		return strings.ToLower(e.Name)
	}
	return e.Message
}

// Is classifies the error: a package or suite that does not exist is the
// recipe's fault, a mirror that cannot be reached is unavailability.
func (e *debootstrapError) Is(target error) bool {
	switch e.Name {
	case "LEFTOVERDEBS", "WRONGSUITE", "NOSCRIPT", "UNSUPPVARIANT", "BADARG", "INVALIDREL", "MISSINGRELENTRY":
		return target == desktop.ErrInvalid
	case "COULDNTDL", "COULDNTDLPKGS", "NOGETREL", "NOGETRELSIG", "BADRELSIG", "UNKNOWNRELSIG", "NEEDROOT":
		return target == desktop.ErrUnavailable
	}
	return false
}

// printfS formats a debootstrap message: each %s (or %d) takes the next
// argument, %% is a percent sign, and \n a newline.
func printfS(format string, args []string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c == '\\' && i+1 < len(format) && format[i+1] == 'n' {
			b.WriteByte(' ')
			i++
			continue
		}
		if c != '%' || i+1 >= len(format) {
			b.WriteByte(c)
			continue
		}
		switch format[i+1] {
		case 's', 'd':
			if len(args) > 0 {
				b.WriteString(args[0])
				args = args[1:]
			}
			i++
		case '%':
			b.WriteByte('%')
			i++
		default:
			b.WriteByte(c)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
