package cvmsim

import (
	"reflect"
	"testing"
)

func TestGenerate(t *testing.T) {
	const n = 5000
	ins := Generate(n)
	if !reflect.DeepEqual(ins, Generate(n)) {
		t.Fatal("Generate is not deterministic")
	}
	if !reflect.DeepEqual(ins[:10], Generate(10)) {
		t.Fatal("Generate(10) is not a prefix of Generate(5000)")
	}
	if reflect.DeepEqual(ins[:10], GenerateSeed(10, 2)) {
		t.Fatal("another seed gave the same instances")
	}
	seen := map[string]bool{}
	count := map[string]int{}
	for _, in := range ins {
		if err := in.validate(); err != nil {
			t.Fatal(err)
		}
		if seen[in.ID] {
			t.Fatalf("duplicate ID %s", in.ID)
		}
		seen[in.ID] = true
		count[in.OS]++
		count[in.State]++
		count[in.Zone]++
		if (in.OS == OSWindows) != (in.ImageID == ImageWindowsOld) {
			t.Fatalf("%+v: image does not match OS", in)
		}
	}
	// Loose bounds around 80/20 Linux/Windows, 10% stopped, 3 zones.
	if w := count[OSWindows]; w < n*15/100 || w > n*25/100 {
		t.Errorf("%d of %d Windows; want about 20%%", w, n)
	}
	if s := count[StateStopped]; s < n*5/100 || s > n*15/100 {
		t.Errorf("%d of %d stopped; want about 10%%", s, n)
	}
	for _, z := range generatedZones {
		if count[z] < n/4 {
			t.Errorf("zone %s has %d of %d", z, count[z], n)
		}
	}
}
