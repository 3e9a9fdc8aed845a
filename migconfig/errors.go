package migconfig

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Sentinel errors that FileError values wrap, so callers can tell the
// kinds of failure apart with errors.Is.
var (
	// ErrUnknownConfig is wrapped by the error Resolve returns when the
	// selected config is not in the file.
	ErrUnknownConfig = errors.New("unknown config")
	// ErrUnknownGPUModel is wrapped when a GPU that a layout must be
	// applied to is not in the catalog.
	ErrUnknownGPUModel = errors.New("GPU model not in the catalog")
)

// Pos is a position in a layout file: 1-based line and column as the YAML
// parser reports them. The zero value means "unknown".
type Pos struct {
	// Line is the 1-based line.
	Line int `json:"line,omitempty"`
	// Column is the 1-based column.
	Column int `json:"column,omitempty"`
}

// IsValid reports whether the position names a line.
func (p Pos) IsValid() bool { return p.Line > 0 }

// String formats the position as "line:column".
func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Column) }

// FileError is one problem in a layout file, positioned so that a person can
// find it: the file, the line and column, the field path (for example
// "mig-configs.all-balanced[0].mig-devices") and what is wrong. Its Error
// method reads
//
//	layouts.yaml:12:7: mig-configs.all-balanced[0].mig-devices: "3g.21gb" is not a profile of A100-SXM4-40GB; did you mean 3g.20gb?
//
// Parts that are unknown are left out.
type FileError struct {
	// File is the file name as given to ParseFile.
	File string
	// Line and Column locate the problem (1-based); zero when unknown.
	Line, Column int
	// Field is the path of the field in the file, "" for the whole file.
	Field string
	// Msg says what is wrong.
	Msg string
	// Err is the underlying cause, if any; Unwrap returns it.
	Err error
}

// Error formats the error as "file:line:col: field: msg".
func (e *FileError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteByte(':')
		if e.Column > 0 {
			b.WriteString(strconv.Itoa(e.Column))
			b.WriteByte(':')
		}
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *FileError) Unwrap() error { return e.Err }

// Pos returns the error's position.
func (e *FileError) Pos() Pos { return Pos{Line: e.Line, Column: e.Column} }

// ErrorList is every problem found in one pass over a file, in file order.
// Its Error method prints one problem per line; errors.As and errors.Is see
// each element.
type ErrorList []*FileError

// Error prints the errors one per line.
func (l ErrorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Unwrap returns the errors, for errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// Err returns nil for an empty list, the list sorted by position
// otherwise (a stable sort, so errors at one position keep their order).
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	out := make(ErrorList, len(l))
	copy(out, l)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return out
}

// errorSink collects positioned errors for one file.
type errorSink struct {
	file string
	errs ErrorList
}

// add records an error at pos.
func (s *errorSink) add(pos Pos, field string, cause error, format string, args ...any) {
	s.errs = append(s.errs, &FileError{
		File:   s.file,
		Line:   pos.Line,
		Column: pos.Column,
		Field:  field,
		Msg:    fmt.Sprintf(format, args...),
		Err:    cause,
	})
}
