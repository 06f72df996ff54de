#!/bin/bash
pkill -f -- '--name mprof[mb]' 2>/dev/null; pkill -f 'mprof/[mb].conf' 2>/dev/null; sleep 0.5
ip netns del mpm 2>/dev/null; ip netns del mpb 2>/dev/null; true
