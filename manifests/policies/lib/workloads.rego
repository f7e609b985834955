# Every place a pod spec or a container can hide in an object this platform admits. One list,
# imported by every workload policy (make golden copies it into each ConstraintTemplate's libs):
# a location missing here is a way around all of them, so tests/policies has an allow and a deny
# case for each location and each kind.
package lib.workloads

import rego.v1

obj := input.review.object

kind := obj.kind

namespace := object.get(obj.metadata, "namespace", object.get(input.review, "namespace", ""))

# generateName when the name is not chosen yet (a Workflow's resource template, a Katib trial):
# a message naming an undefined name would drop the violation with it
name := object.get(obj.metadata, "name", object.get(obj.metadata, "generateName", ""))

# The objects whose pod specs this one carries: itself, and the object Katib makes of a trial
# template (an Experiment's trialSpec, a Trial's runSpec: a Job, a TrainJob, a Workflow...).
# Each pod spec below is kept with the kind of the object it sits in ("of"), for policies that
# judge a pod by what makes it (restricted-scheduling).
objects contains obj

objects contains obj.spec.trialTemplate.trialSpec if kind == "Experiment"

objects contains obj.spec.runSpec if kind == "Trial"

# Pod specs: a Pod, a workload's template, a CronJob's job template, each KServe component and
# Standard-mode canary predictor (its containers are inline) and a predictor's workerSpec, a
# JobSet's and a Trainer runtime's replicated jobs, a TrainJob's patches of its runtime's pods,
# and Argo's podSpecPatch (YAML or JSON text) anywhere.
located contains {"of": o.kind, "spec": o.spec} if {
	some o in objects
	o.kind == "Pod"
}

located contains {"of": o.kind, "spec": o.spec.template.spec} if {
	some o in objects
	o.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
}

located contains {"of": o.kind, "spec": o.spec.jobTemplate.spec.template.spec} if {
	some o in objects
	o.kind == "CronJob"
}

located contains {"of": c.of, "spec": c.spec} if some c in serving_components

# A predictor's workerSpec (KServe's multi-node serving) is the pod spec of its worker pods.
located contains {"of": c.of, "spec": c.spec.workerSpec} if {
	some c in serving_components
	is_object(c.spec.workerSpec)
}

located contains {"of": o.kind, "spec": job.template.spec.template.spec} if {
	some o in objects
	some job in object.get(o, ["spec", "replicatedJobs"], [])
	o.kind == "JobSet"
}

located contains {"of": o.kind, "spec": job.template.spec.template.spec} if {
	some o in objects
	o.kind in {"TrainingRuntime", "ClusterTrainingRuntime"}
	some job in object.get(o, ["spec", "template", "spec", "replicatedJobs"], [])
}

located contains {"of": o.kind, "spec": job.template.spec.template.spec} if {
	some o in objects
	o.kind == "TrainJob"
	some patch in object.get(o, ["spec", "runtimePatches"], [])
	some job in object.get(patch, ["trainingRuntimeSpec", "template", "spec", "replicatedJobs"], [])
}

# Earlier Trainer releases override the runtime's pods in podSpecOverrides (a pod spec each) or
# podTemplateOverrides (a template each); the API server prunes what its CRD does not declare,
# but a cluster on such a release keeps them.
located contains {"of": o.kind, "spec": override} if {
	some o in objects
	o.kind == "TrainJob"
	some override in object.get(o, ["spec", "podSpecOverrides"], [])
}

located contains {"of": o.kind, "spec": override.spec} if {
	some o in objects
	o.kind == "TrainJob"
	some override in object.get(o, ["spec", "podTemplateOverrides"], [])
}

# KubeRay: a RayJob's cluster (its head and each worker group, the pods KubeRay makes of them) and
# its submitter's pod template; a RayCluster's head and worker groups.
located contains {"of": o.kind, "spec": group.template.spec} if {
	some o in objects
	o.kind == "RayJob"
	some group in ray_groups(object.get(o, ["spec", "rayClusterSpec"], {}))
}

located contains {"of": o.kind, "spec": o.spec.submitterPodTemplate.spec} if {
	some o in objects
	o.kind == "RayJob"
	is_object(o.spec.submitterPodTemplate.spec)
}

located contains {"of": o.kind, "spec": group.template.spec} if {
	some o in objects
	o.kind == "RayCluster"
	some group in ray_groups(o.spec)
}

ray_groups(cluster) := array.concat([object.get(cluster, "headGroupSpec", {})], object.get(cluster, "workerGroupSpecs", []))

located contains {"of": entry.of, "spec": patch} if {
	some entry in pod_spec_patches
	yaml.is_valid(entry.text) # not YAML (a patch built from parameters): judged by what reads the text
	patch := yaml.unmarshal(entry.text)
}

pod_specs contains entry.spec if some entry in located

inference_components := {"predictor", "transformer", "explainer"}

# KServe's components, each a pod spec with its containers and model specs inline, with the path
# it sits at ("at"): spec.predictor, spec.transformer, spec.explainer...
serving_components contains {"of": o.kind, "at": name, "spec": o.spec[name]} if {
	some o in objects
	o.kind == "InferenceService"
	some name in inference_components
}

# ...and each Standard-mode canary's predictor (KServe 0.20's spec.canary, a list of {predictor,
# trafficPercent}: each predictor gets a Deployment of its own), judged as spec.predictor is.
serving_components contains {"of": o.kind, "at": sprintf("canary[%v].predictor", [i]), "spec": entry.predictor} if {
	some o in objects
	o.kind == "InferenceService"
	some i, entry in object.get(o.spec, "canary", [])
	is_object(entry.predictor)
}

workflows contains {"of": o.kind, "spec": o.spec} if {
	some o in objects
	o.kind in {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate"}
}

workflows contains {"of": o.kind, "spec": o.spec.workflowSpec} if {
	some o in objects
	o.kind == "CronWorkflow"
}

workflow_specs contains entry.spec if some entry in workflows

workflow_templates contains {"of": entry.of, "template": template} if {
	some entry in workflows
	some template in object.get(entry.spec, "templates", [])
}

workflow_templates contains {"of": entry.of, "template": entry.spec.templateDefaults} if {
	some entry in workflows
	entry.spec.templateDefaults
}

# An inline template (Argo >= 3.4: a DAG task's or a step's `inline`, at any depth) is a template of
# its own: the pod Argo makes of it runs as it says, like a named template's.
workflow_templates contains {"of": entry.of, "template": value} if {
	some entry in workflows
	walk(entry.spec, [path, value])
	count(path) > 0
	path[count(path) - 1] == "inline"
	is_object(value)
}

templates contains entry.template if some entry in workflow_templates

pod_spec_patches contains {"of": entry.of, "text": entry.spec.podSpecPatch} if {
	some entry in workflows
	entry.spec.podSpecPatch
}

pod_spec_patches contains {"of": entry.of, "text": entry.template.podSpecPatch} if {
	some entry in workflow_templates
	entry.template.podSpecPatch
}

# Pod-level settings (hostNetwork, volumes, tolerations, priorityClassName, securityContext):
# pod specs, an Argo workflow's spec (every pod it makes) and each Argo template (its own pod),
# each with the kind of the object it sits in.
pod_level_of contains entry if some entry in located

pod_level_of contains entry if some entry in workflows

pod_level_of contains {"of": entry.of, "spec": entry.template} if some entry in workflow_templates

pod_level contains entry.spec if some entry in pod_level_of

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
containers contains {"where": sprintf("%s.%s", [c.at, framework]), "container": spec} if {
	some c in serving_components
	is_object(c.spec)
	some framework, spec in c.spec
	framework in model_frameworks
}

model_frameworks := {
	"model", "triton", "sklearn", "xgboost", "tensorflow", "pytorch", "onnx",
	"huggingface", "lightgbm", "paddle", "pmml", "alibi", "art",
}

# A TrainJob's trainer is the runtime's node container with this image, command, env and
# resourcesPerNode; its dataset and model initializers add env to theirs.
containers contains {"where": "trainer", "container": container} if {
	some o in objects
	o.kind == "TrainJob"
	trainer := o.spec.trainer
	resources := {"resources": object.get(trainer, "resourcesPerNode", {})}
	container := object.union(object.remove(trainer, {"resourcesPerNode"}), resources)
}

containers contains {"where": sprintf("%s initializer", [name]), "container": initializer} if {
	some o in objects
	o.kind == "TrainJob"
	some name, initializer in object.get(o, ["spec", "initializer"], {})
}

# Katib's custom metrics collector is a container Katib adds to each trial's pods.
containers contains {"where": "metrics collector", "container": collector} if {
	some o in objects
	some path in [["spec", "metricsCollectorSpec"], ["spec", "metricsCollector"]]
	collector := object.get(o, array.concat(path, ["collector", "customCollector"]), null)
	collector != null
}

# KServe's own pods: labelled with their InferenceService, controlled by the object that makes
# them, and created by that object's controller (each row: the kind, its controlling owner's
# group/kind, the users whose requests create it; a Constraint may pass its own as servedBy). The
# label alone proves nothing (a Workflow's pod may carry it); a Workflow pod is created by Argo's
# controller and owned by its Workflow. Gatekeeper's audit and gator review stored objects with no
# request: there the owner and the label are the evidence.
served_by := object.get(input.parameters, "servedBy", [
	{"kind": "Deployment", "owner": "serving.kserve.io/InferenceService",
	 "users": ["system:serviceaccount:kserve:kserve-controller-manager"]},
	{"kind": "Deployment", "owner": "serving.knative.dev/Revision",
	 "users": ["system:serviceaccount:knative-serving:controller"]},
	{"kind": "ReplicaSet", "owner": "apps/Deployment",
	 "users": ["system:serviceaccount:kube-system:deployment-controller", "system:kube-controller-manager"]},
	{"kind": "Pod", "owner": "apps/ReplicaSet",
	 "users": ["system:serviceaccount:kube-system:replicaset-controller", "system:kube-controller-manager"]},
])

served_by_kserve if {
	object.get(obj.metadata, ["labels", "serving.kserve.io/inferenceservice"], "") != ""
	some row in served_by
	row.kind == kind
	some owner in object.get(obj.metadata, "ownerReferences", [])
	object.get(owner, "controller", false) == true
	sprintf("%s/%s", [api_group(owner.apiVersion), owner.kind]) == row.owner
	requested_by(row.users)
}

api_group(api_version) := parts[0] if {
	parts := split(api_version, "/")
	count(parts) == 2
} else := ""

requested_by(users) if input.review.userInfo.username in users

requested_by(_) if not input.review.userInfo
