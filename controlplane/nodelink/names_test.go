package nodelink

import (
	"strings"
	"testing"
)

func TestConsumerNameFits(t *testing.T) {
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	if n := ConsumerName(long); len(n) > maxConsumerName || strings.ContainsAny(n, " .*>") {
		t.Errorf("ConsumerName(253 chars) = %q (%d)", n, len(n))
	}
	if ConsumerName(long) == ConsumerName(long[:252]) {
		t.Error("distinct long names share a consumer")
	}
	if got := ConsumerName("n1"); got != "node-n1" {
		t.Errorf("ConsumerName(n1) = %q", got)
	}
}
