#!/usr/bin/env python3
"""Checks deploy/kubernetes/'s split build: index-job.yaml and build-job.yaml must be valid Indexed
Jobs whose pods each measure or build one task's share, and finish-job.yaml a Job that finishes the
same build. Prints what the test then runs (the containers' commands and environment) as JSON.

Usage: kubernetes_jobs.py INDEX_JOB_YAML BUILD_JOB_YAML FINISH_JOB_YAML
"""

import json
import sys

import yaml


def job(path):
    with open(path) as f:
        documents = [d for d in yaml.safe_load_all(f) if d is not None]
    assert len(documents) == 1, f"{path}: expected one document, found {len(documents)}"
    doc = documents[0]
    assert doc.get("apiVersion") == "batch/v1" and doc.get("kind") == "Job", f"{path}: not a batch/v1 Job"
    assert doc["metadata"]["name"], f"{path}: the Job has no name"
    pod = doc["spec"]["template"]["spec"]
    # A Job's pods must not restart in place: Never or OnFailure.
    assert pod.get("restartPolicy") in ("Never", "OnFailure"), f"{path}: restartPolicy {pod.get('restartPolicy')}"
    containers = pod["containers"]
    assert len(containers) == 1, f"{path}: expected one container"
    container = containers[0]
    assert container.get("image"), f"{path}: the container has no image"
    mounts = {m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"] for v in pod.get("volumes", [])}
    assert mounts <= volumes, f"{path}: mounts {mounts - volumes} name no volume"
    env = {e["name"]: e["value"] for e in container.get("env", [])}
    return doc, container["command"], env


def option(command, name):
    return command[command.index(name) + 1] if name in command else None


def indexed(doc, command, subcommand):
    """An Indexed Job running `mixtape SUBCOMMAND ... --tasks COMPLETIONS`; its completions."""
    spec = doc["spec"]
    name = doc["metadata"]["name"]
    assert spec.get("completionMode") == "Indexed", f"{name}: completionMode must be Indexed"
    completions = spec["completions"]
    assert isinstance(completions, int) and completions >= 1
    assert spec.get("parallelism", completions) <= completions
    # Each pod's JOB_COMPLETION_INDEX is its task; --tasks is the count.
    assert command[:2] == ["mixtape", subcommand], command
    assert option(command, "--tasks") == str(completions), f"{name}: --tasks must equal completions"
    assert "--task" not in command, f"{name}: the task comes from JOB_COMPLETION_INDEX"
    return completions


def main():
    index, index_command, index_env = job(sys.argv[1])
    build, build_command, build_env = job(sys.argv[2])
    finish, finish_command, finish_env = job(sys.argv[3])
    completions = indexed(build, build_command, "build")
    index_completions = indexed(index, index_command, "index")
    assert finish["spec"].get("completionMode", "NonIndexed") == "NonIndexed"
    assert finish_command[:2] == ["mixtape", "build"] and "--finish" in finish_command
    for same in ("--out", "--shard-bytes"):
        assert option(build_command, same) == option(finish_command, same), f"{same} differs"
    assert build_command[2] == finish_command[2], "the recipe differs"
    assert build_command[2] == index_command[2], "the index job's recipe differs"
    assert build_env == finish_env == index_env, "the environment differs"
    json.dump(
        {
            "index_completions": index_completions,
            "index": index_command,
            "completions": completions,
            "build": build_command,
            "finish": finish_command,
            "env": build_env,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
