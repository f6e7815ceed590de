// Package launch starts applications on a desktop: by the name of their
// .desktop file (its Exec line turned into an argv, never a shell string),
// by an argv, or through xdg-open for a file or URL.
package launch

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Entry is the part of a .desktop file that starting it needs.
type Entry struct {
	Name     string
	Exec     string
	Path     string // working directory
	Terminal bool
	Icon     string
	File     string // where it was read from
}

// Parse reads the [Desktop Entry] group of a .desktop file.
func Parse(r io.Reader) (Entry, error) {
	var e Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	group := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '[' && line[len(line)-1] == ']' {
			group = line[1 : len(line)-1]
			continue
		}
		if group != "Desktop Entry" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "Name":
			e.Name = unescapeValue(v)
		case "Exec":
			e.Exec = unescapeValue(v)
		case "Path":
			e.Path = unescapeValue(v)
		case "Icon":
			e.Icon = unescapeValue(v)
		case "Terminal":
			e.Terminal = v == "true"
		}
	}
	if err := sc.Err(); err != nil {
		return e, fmt.Errorf("launch: read desktop entry: %w", err)
	}
	if e.Exec == "" {
		return e, fmt.Errorf("launch: desktop entry has no Exec line: %w", desktop.ErrInvalid)
	}
	return e, nil
}

// unescapeValue applies the escapes of a desktop entry string value.
func unescapeValue(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' || i+1 == len(v) {
			b.WriteByte(v[i])
			continue
		}
		i++
		switch v[i] {
		case 's':
			b.WriteByte(' ')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		default:
			b.WriteByte('\\')
			b.WriteByte(v[i])
		}
	}
	return b.String()
}

// Argv turns an Exec value into an argv, the way the Desktop Entry
// Specification says: arguments split on spaces, double quotes group them
// (with \" \` \$ \\ escapes inside), and field codes expand: %f %u take the
// first of uris, %F %U all of them, %c the name, %i the icon, %k the file,
// %% a percent sign; deprecated codes vanish.
func (e Entry) Argv(uris []string) ([]string, error) {
	words, err := splitExec(e.Exec)
	if err != nil {
		return nil, err
	}
	var argv []string
	for _, w := range words {
		if !w.quoted {
			switch w.s {
			case "%F", "%U":
				argv = append(argv, uris...)
				continue
			case "%i":
				if e.Icon != "" {
					argv = append(argv, "--icon", e.Icon)
				}
				continue
			}
		}
		s, err := expandCodes(w.s, e, uris)
		if err != nil {
			return nil, err
		}
		if s == "" && !w.quoted && strings.Contains(w.s, "%") {
			continue // a lone field code with nothing to put there
		}
		argv = append(argv, s)
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, fmt.Errorf("launch: Exec line %q names no program: %w", e.Exec, desktop.ErrInvalid)
	}
	return argv, nil
}

type word struct {
	s      string
	quoted bool
}

func splitExec(s string) ([]word, error) {
	var words []word
	var cur strings.Builder
	inWord, quoted, inQuotes := false, false, false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case inQuotes && ch == '\\' && i+1 < len(s) && strings.IndexByte("\"`$\\", s[i+1]) >= 0:
			i++
			cur.WriteByte(s[i])
		case ch == '"':
			inQuotes = !inQuotes
			inWord, quoted = true, true
		case !inQuotes && (ch == ' ' || ch == '\t'):
			if inWord {
				words = append(words, word{cur.String(), quoted})
				cur.Reset()
				inWord, quoted = false, false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inQuotes {
		return nil, fmt.Errorf("launch: Exec line %q has an unterminated quote: %w", s, desktop.ErrInvalid)
	}
	if inWord {
		words = append(words, word{cur.String(), quoted})
	}
	return words, nil
}

func expandCodes(s string, e Entry, uris []string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("launch: Exec line %q ends in a lone %%: %w", e.Exec, desktop.ErrInvalid)
		}
		i++
		switch s[i] {
		case '%':
			b.WriteByte('%')
		case 'f', 'u':
			if len(uris) > 0 {
				b.WriteString(uris[0])
			}
		case 'F', 'U':
			b.WriteString(strings.Join(uris, " "))
		case 'c':
			b.WriteString(e.Name)
		case 'k':
			b.WriteString(e.File)
		case 'i':
			b.WriteString(e.Icon)
		case 'd', 'D', 'n', 'N', 'v', 'm':
		default:
			return "", fmt.Errorf("launch: Exec line %q has an unknown field code %%%c: %w", e.Exec, s[i], desktop.ErrInvalid)
		}
	}
	return b.String(), nil
}

// DataDirs are the directories searched for applications/<name>.desktop:
// $XDG_DATA_HOME (or ~/.local/share) first, then $XDG_DATA_DIRS (or
// /usr/local/share:/usr/share).
func DataDirs(env []string, home string) []string {
	get := func(k string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if v, ok := strings.CutPrefix(env[i], k+"="); ok {
				return v
			}
		}
		return ""
	}
	var dirs []string
	if h := get("XDG_DATA_HOME"); h != "" {
		dirs = append(dirs, h)
	} else if home != "" {
		dirs = append(dirs, filepath.Join(home, ".local/share"))
	}
	sys := get("XDG_DATA_DIRS")
	if sys == "" {
		sys = "/usr/local/share:/usr/share"
	}
	for _, d := range strings.Split(sys, ":") {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// Find locates and parses the .desktop file for name ("firefox-esr" or
// "firefox-esr.desktop") in dirs. A name that is not a plain file name is
// refused.
func Find(name string, dirs []string) (Entry, error) {
	file := strings.TrimSuffix(name, ".desktop") + ".desktop"
	if name == "" || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
		return Entry{}, fmt.Errorf("launch: %q is not a .desktop name: %w", name, desktop.ErrInvalid)
	}
	for _, d := range dirs {
		p := filepath.Join(d, "applications", file)
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return Entry{}, fmt.Errorf("launch: %w", err)
		}
		e, err := Parse(f)
		f.Close()
		if err != nil {
			return Entry{}, fmt.Errorf("launch: %s: %w", p, err)
		}
		e.File = p
		return e, nil
	}
	return Entry{}, &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Field: "app",
		Message: fmt.Sprintf("no application %q: no %s in %s/applications (list them with: ls /usr/share/applications)", name, file, strings.Join(dirs, "/applications, "))}
}
