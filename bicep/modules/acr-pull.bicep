// Grants the hive's pull identity the built-in AcrPull role on an existing Azure Container
// Registry. Deployed into the registry's resource group (main.bicep sets the scope).
// A role assignment is an extension resource and takes no tags.

@description('Name of the Azure Container Registry (the part before .azurecr.io).')
param registryName string

@description('Principal ID of the identity that pulls the image.')
param principalId string

// Built-in role "AcrPull": pull images, nothing else.
var acrPullRoleId = '7f951dda-4ed3-4680-a7ca-43fe172d538d'

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, acrPullRoleId)
  scope: registry
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPullRoleId)
  }
}
