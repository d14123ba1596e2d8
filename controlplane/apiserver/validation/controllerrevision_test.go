package validation

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func testControllerRevision() *appsv1.ControllerRevision {
	return &appsv1.ControllerRevision{
		ObjectMeta: testMeta("agent-5d4f8c"),
		Data:       runtime.RawExtension{Raw: []byte(`{"spec":{"template":{}}}`)},
		Revision:   1,
	}
}

func TestValidateControllerRevision(t *testing.T) {
	runCreateCases(t, testControllerRevision, []createCase[*appsv1.ControllerRevision]{
		{name: "name", mutate: func(cr *appsv1.ControllerRevision) { cr.Name = "Agent_1" }, want: []want{invalid("metadata.name")}},
		{name: "data required", mutate: func(cr *appsv1.ControllerRevision) { cr.Data = runtime.RawExtension{} }, want: []want{required("data")}},
		{name: "negative revision", mutate: func(cr *appsv1.ControllerRevision) { cr.Revision = -1 }, want: []want{invalid("revision")}},
	})
	runUpdateCases(t, stored(testControllerRevision), []updateCase[*appsv1.ControllerRevision]{
		{name: "bump the revision", mutate: func(cr *appsv1.ControllerRevision) { cr.Revision = 2 }},
		{name: "negative revision", mutate: func(cr *appsv1.ControllerRevision) { cr.Revision = -2 }, want: []want{invalid("revision")}},
	})
}
