"""The Distiller family and its parts."""
