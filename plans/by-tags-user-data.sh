#!/bin/sh
# Runs once on first boot after the reinstall (ResetInstance UserData).
# Keep secrets out of it when you can: it is read by the workers at call
# time and never stored, but the instance keeps it in its metadata.
echo "reinstalled by fleetreset" > /etc/motd
