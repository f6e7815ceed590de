package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	tests := map[string]string{
		`/plain/path`:        "/plain/path",
		`/with\040space`:     "/with space",
		`/tab\011and\012nl`:  "/tab\tand\nnl",
		`/back\134slash`:     `/back\slash`,
		`/not\09escape`:      `/not\09escape`,
		`/short\04`:          `/short\04`,
		`/two\040\040spaces`: "/two  spaces",
		`/t\011x\134`:        "/t\tx\\",
		`/odd\04`:            `/odd\04`,
	}
	for in, want := range tests {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
