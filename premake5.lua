-- Kit extension template build (kit-extension-template / kit-app-template `repo build`), link-only: SimGap has no
-- compiled code. It links this checkout's pieces into _build/<platform>/<config>/exts/simgap_ext so that apps built
-- with the template find the extension; outside that tooling the file is unused (docs/kit.md: --ext-folder route).
-- Use folder name to build extension name and tag. Version is specified in extension.toml.
local ext = get_current_extension_info()

project_ext(ext)

-- Links, not copies: edits to the Python package show up in the built app without a rebuild.
repo_build.prebuild_link { "simgap_ext", ext.target_dir.."/simgap_ext" }
repo_build.prebuild_link { "config", ext.target_dir.."/config" }
repo_build.prebuild_link { "data", ext.target_dir.."/data" }
repo_build.prebuild_link { "docs", ext.target_dir.."/docs" }
-- The manifest sits at the top level of this repository (Kit accepts `extension.toml` beside `config/`).
repo_build.prebuild_link { "extension.toml", ext.target_dir.."/extension.toml" }
