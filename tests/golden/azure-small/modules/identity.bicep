// The user-assigned managed identity every agent app of a hive pulls its image with, so no
// registry password (and no registry admin user) is ever needed.

@description('Name of the hive: prefixes the resource name.')
param hiveName string

@description('Azure region of the identity.')
param location string

@description('Tags of every resource (at least amplihack-hive: <hive name>).')
param tags object

resource pullIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${hiveName}-pull'
  location: location
  tags: tags
}

@description('Resource ID of the identity (what a container app\'s registries entry names).')
output id string = pullIdentity.id

@description('Principal ID of the identity (what a role assignment names).')
output principalId string = pullIdentity.properties.principalId
