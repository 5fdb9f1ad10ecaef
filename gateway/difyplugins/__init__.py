"""Dify's own plugins in the gateway: packages (`.difypkg`), their declarations and signatures.

This `__init__` only re-exports; each concept lives in its module:
`manifest` (the declarations), `form` (the endpoint settings form), `package` (reading and
extracting), `signature` (Dify's signing scheme). Installing builds on the installation records
(gateway/records/installations.py), which build on these, so it is imported from its own modules:
`installs.DifyPlugins` (install, upgrade, remove) and `installer.PluginInstaller` (the runtime's hook).
"""

from __future__ import annotations

from gateway.difyplugins.form import (
    FIELD_TYPES as FIELD_TYPES,
    FieldType as FieldType,
    SettingsField as SettingsField,
    secret_fields as secret_fields,
    settings_form as settings_form,
    validate_settings as validate_settings,
)
from gateway.difyplugins.manifest import (
    REVERSE_CALL_KINDS as REVERSE_CALL_KINDS,
    EndpointDeclaration as EndpointDeclaration,
    EndpointGroup as EndpointGroup,
    InvalidPackage as InvalidPackage,
    Manifest as Manifest,
    Permissions as Permissions,
    SettingDeclaration as SettingDeclaration,
)
from gateway.difyplugins.package import (
    Archive as Archive,
    PackageLimits as PackageLimits,
    PluginPackage as PluginPackage,
    dify_checksum as dify_checksum,
    pack_directory as pack_directory,
    read_archive as read_archive,
    read_directory as read_directory,
    read_package as read_package,
)
from gateway.difyplugins.signature import (
    TrustedKey as TrustedKey,
    UnsignedPackage as UnsignedPackage,
    Verification as Verification,
    check_signature_policy as check_signature_policy,
    fingerprint as fingerprint,
    generate_keypair as generate_keypair,
    load_trusted_keys as load_trusted_keys,
    official_key as official_key,
    sign_package as sign_package,
    verify_package as verify_package,
)
