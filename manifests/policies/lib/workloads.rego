# Every place a pod spec or a container can hide in an object this platform admits. One list,
# imported by every workload policy (make golden copies it into each ConstraintTemplate's libs):
# a location missing here is a way around all of them, so tests/policies has an allow and a deny
# case for each location and each kind.
package lib.workloads

import rego.v1

obj := input.review.object

kind := obj.kind

namespace := object.get(obj.metadata, "namespace", object.get(input.review, "namespace", ""))

# Pod specs: a Pod, a workload's template, a CronJob's job template, each KServe component
# (its containers are inline), and Argo's podSpecPatch (YAML or JSON text) anywhere.
pod_specs contains obj.spec if kind == "Pod"

pod_specs contains obj.spec.template.spec if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

pod_specs contains obj.spec.jobTemplate.spec.template.spec if kind == "CronJob"

pod_specs contains component if {
	kind == "InferenceService"
	some name in inference_components
	component := obj.spec[name]
}

pod_specs contains patch if {
	some text in pod_spec_patches
	patch := yaml.unmarshal(text)
}

inference_components := {"predictor", "transformer", "explainer"}

workflow_specs contains obj.spec if kind in {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate"}

workflow_specs contains obj.spec.workflowSpec if kind == "CronWorkflow"

templates contains template if {
	some spec in workflow_specs
	some template in object.get(spec, "templates", [])
}

templates contains spec.templateDefaults if {
	some spec in workflow_specs
	spec.templateDefaults
}

pod_spec_patches contains spec.podSpecPatch if {
	some spec in workflow_specs
	spec.podSpecPatch
}

pod_spec_patches contains template.podSpecPatch if {
	some template in templates
	template.podSpecPatch
}

# Pod-level settings (hostNetwork, volumes, tolerations, priorityClassName, securityContext):
# pod specs, an Argo workflow's spec (every pod it makes) and each Argo template (its own pod).
pod_level contains spec if some spec in pod_specs

pod_level contains spec if some spec in workflow_specs

pod_level contains template if some template in templates

# Every container, with where it was found: {"where": text, "container": object}.
container_fields := {
	"containers": "container",
	"initContainers": "initContainer",
	"ephemeralContainers": "ephemeralContainer",
	"sidecars": "sidecar",
}

containers contains {"where": sprintf("%s %q", [label, object.get(c, "name", "")]), "container": c} if {
	some spec in pod_level
	some field, label in container_fields
	some c in object.get(spec, field, [])
}

containers contains {"where": sprintf("template %q %s", [object.get(t, "name", "defaults"), field]), "container": t[field]} if {
	some t in templates
	some field in {"container", "script"}
	t[field]
}

containers contains {"where": sprintf("template %q containerSet container %q", [object.get(t, "name", "defaults"), object.get(c, "name", "")]), "container": c} if {
	some t in templates
	some c in object.get(t, ["containerSet", "containers"], [])
}

# KServe's model specs (predictor.model, predictor.triton, ...) are containers under a framework key.
containers contains {"where": sprintf("%s.%s", [name, framework]), "container": spec} if {
	kind == "InferenceService"
	some name in inference_components
	some framework, spec in object.get(obj.spec, name, {})
	framework in model_frameworks
}

model_frameworks := {
	"model", "triton", "sklearn", "xgboost", "tensorflow", "pytorch", "onnx",
	"huggingface", "lightgbm", "paddle", "pmml", "alibi", "art",
}
