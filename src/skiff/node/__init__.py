"""The node: pods as local process groups (skiff's kubelet); next, the pod network.

Pure decisions: images/ (image name -> what to run), env.py (container
environment), ports.py (which loopback ports a pod gets), probes.py (probe
specs and thresholds), backoff.py (CrashLoopBackOff), status.py (observations
-> pod status). Shells around them: process.py (spawn/stop process groups, log
files, ports), forkserver.py (a warm template that forks the built-in Python
images in a few ms), prober.py (tcp/http/exec checks), execsession.py (exec into a
container), logs.py (log paths, follow), pod.py (one pod's supervisor) and
node.py (NodeRuntime: watches pods through the Client and runs them).

This package file stays empty on purpose: a pod running the built-in
hello-openshift image imports skiff.node.images, and that import
must stay cheap.
"""
