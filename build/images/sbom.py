#!/usr/bin/env python3
"""One CycloneDX SBOM per image: the .NET tool's document for the program (its NuGet packages), with the Debian
packages of the image's base and, for the .NET base, the shared frameworks copied into it, added as components.

usage: sbom.py PROGRAM_BOM PACKAGE_LIST IMAGE VERSION OUTPUT [FRAMEWORK=VERSION ...]
"""
import json
import sys

program_bom, package_list, image, version, output, *frameworks = sys.argv[1:]
with open(program_bom, encoding="utf-8") as f:
    bom = json.load(f)
components = bom.setdefault("components", [])
with open(package_list, encoding="utf-8") as f:
    for line in f:
        name, package_version, arch = line.split()
        purl = f"pkg:deb/debian/{name}@{package_version}?arch={arch}&distro=debian-12"
        components.append({"type": "library", "bom-ref": purl, "name": name, "version": package_version, "purl": purl})
for framework in frameworks:
    name, framework_version = framework.split("=", 1)
    purl = f"pkg:nuget/{name}@{framework_version}"
    components.append({"type": "framework", "bom-ref": purl, "name": name, "version": framework_version, "purl": purl})
# The document describes the image, of which the program is one part.
program = bom.get("metadata", {}).get("component")
bom.setdefault("metadata", {})["component"] = {"type": "container", "bom-ref": f"{image}:{version}", "name": image, "version": version}
if program:
    components.insert(0, program)
with open(output, "w", encoding="utf-8") as f:
    json.dump(bom, f, indent=1, sort_keys=True)
    f.write("\n")
